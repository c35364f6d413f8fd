"""Benchmark: a burst of small bandmath tasks through the gateway, beside the orchestration floor.

    uv run python bench/api.py [--tasks 50] [--topology embedded|postgres|both]

For each topology it starts the whole service in processes (embedded: Prefect server on SQLite +
`deployments/serve.py`; postgres: Prefect server and our database on PostgreSQL, `prefect deploy`
and two process workers), then POSTs N `bandmath` NDVI tasks over a small polygon of the real sample
at once and polls each to its end, and creates N runs of a trivial six-step flow (`flows/noop.py`)
from its deployment the same way. Prints tasks/s and p50/p90 POST-to-finished latency for both,
and their ratio: what our tasks add above Prefect's own floor.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from eotasks.catalog.ingest import ingest_folder  # noqa: E402
from eotasks.db import create_api_key, get_engine, init_db  # noqa: E402
from eotasks.launcher import Service, free_port, service_env  # noqa: E402

SAMPLE = REPO / "tests" / "data" / "s2-l1c-crop"
VIEW_ID = "S2/18/S/VG/2020/6/15/0"
POLYGON = {"type": "Polygon", "coordinates": [[[-75.6595, 37.6985], [-75.6420, 37.6960], [-75.6500, 37.7160], [-75.6595, 37.6985]]]}
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def burst(n: int, start, done) -> tuple[float, list[float]]:
    """Start n runs at once (start() -> handle), poll each until done(handle); (runs/s, latencies)."""
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(4) as pool:
        handles = list(pool.map(lambda _: (time.perf_counter(), start()), range(n)))

    def finish(item):
        posted, handle = item
        while not done(handle):
            time.sleep(1.0)  # gentle polling: the benchmark must not load the server it measures
        return time.perf_counter(), time.perf_counter() - posted

    with cf.ThreadPoolExecutor(8) as pool:
        ends = list(pool.map(finish, handles))
    total = max(e for e, _ in ends) - t0
    return n / total, [lat for _, lat in ends]


def call(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """Like Prefect's own client: retry 5xx (SQLite "database is locked" under bursts) and resets."""
    for attempt in range(30):
        try:
            r = client.request(method, url, **kwargs)
            if r.status_code < 500:
                return r
        except httpx.TransportError:
            pass
        time.sleep(min(0.2 * 2 ** attempt, 2.0))
    raise RuntimeError(f"{method} {url} kept failing")


def run_topology(topology: str, n: int) -> list[tuple[str, float, list[float]]]:
    root = Path(tempfile.mkdtemp(prefix=f"eotasks-bench-{topology}-"))
    prefect_port, gateway_port = free_port(), free_port()
    extra = {"EOTASKS_PORT": str(gateway_port), "EOTASKS_SERVE_NOOP": "1", "EOTASKS_CODE_DIR": str(REPO), "PREFECT_LOGGING_LEVEL": "WARNING"}
    dbs = []
    if topology == "postgres":
        suffix = uuid.uuid4().hex[:8]
        dbs = [f"bench_prefect_{suffix}", f"bench_app_{suffix}"]
        with get_engine(f"{PG}/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            for name in dbs:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        extra.update(PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbs[0]}",
                     EOTASKS_DATABASE_URL=f"{PG}/{dbs[1]}")
    env = service_env(root, prefect_port, extra)
    db_url = env.get("EOTASKS_DATABASE_URL") or f"sqlite:///{root / 'eotasks.db'}"
    init_db(db_url)
    ingest_folder(SAMPLE, "sentinel2", view_id=VIEW_ID, platform="S2A", url=db_url)
    key, _ = create_api_key("bench", url=db_url)
    service = Service(env, root / "logs")
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        if topology == "embedded":
            service.start_serve(["bandmath/eotasks", "noop/eotasks"])
        else:
            def prefect(*args: str) -> None:
                subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO, env=env, check=True, capture_output=True)
            prefect("work-pool", "create", "eotasks", "--type", "process")
            prefect("--no-prompt", "deploy", "--all")
            floor = root / "noop.prefect.yaml"  # the floor's deployment, kept out of the production prefect.yaml
            floor.write_text(
                "name: eotasks-bench\npull:\n  - prefect.deployments.steps.set_working_directory:\n"
                "      directory: \"{{ $EOTASKS_CODE_DIR }}\"\ndeployments:\n  - name: eotasks\n"
                "    entrypoint: flows/noop.py:noop\n    work_pool:\n      name: eotasks\n")
            prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(floor))
            for name in ("worker-a", "worker-b"):
                service.start(name, [sys.executable, "-m", "prefect", "worker", "start", "--pool", "eotasks", "--limit", "10", "--name", name])
        service.start_gateway("127.0.0.1", gateway_port)
        base, api = f"http://127.0.0.1:{gateway_port}", env["PREFECT_API_URL"]
        client = httpx.Client(timeout=60)
        body = {"type": "bandmath", "params": {"view_id": VIEW_ID, "bm_type": "NDVI", "geometry": POLYGON}}

        def post() -> str:
            return call(client, "POST", f"{base}/api", params={"api_key": key}, json=body).json()["task_id"]

        def finished(task_id: str) -> bool:
            r = call(client, "GET", f"{base}/api/{task_id}", params={"api_key": key, "redirect": "false"})
            if r.json().get("task_type") in ("failed", "cancelled"):
                raise RuntimeError(r.text)
            return r.json().get("task_type") == "finished"

        noop_id = client.get(f"{api}/deployments/name/noop/eotasks").json()["id"]

        def create_noop() -> str:
            return call(client, "POST", f"{api}/deployments/{noop_id}/create_flow_run", json={}).json()["id"]

        def noop_done(run_id: str) -> bool:
            state = call(client, "GET", f"{api}/flow_runs/{run_id}").json()["state"]["type"]
            if state in ("FAILED", "CRASHED"):
                raise RuntimeError(state)
            return state == "COMPLETED"

        rows = []
        rate, lat = burst(n, create_noop, noop_done)
        rows.append((f"{topology}: trivial six-step flow (floor)", rate, lat))
        rate, lat = burst(n, post, finished)
        rows.append((f"{topology}: bandmath through the gateway", rate, lat))
        return rows
    finally:
        service.stop(grace=5)
        if dbs:
            with get_engine(f"{PG}/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
                for name in dbs:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--topology", choices=["embedded", "postgres", "both"], default="both")
    args = parser.parse_args()
    rows = []
    print(f"{args.tasks} runs each, started at once, on {os.cpu_count()} cores")
    print(f"{'':48s} {'runs/s':>7s} {'p50 s':>7s} {'p90 s':>7s} {'runs/s vs floor':>16s}", flush=True)
    for topology in (["embedded", "postgres"] if args.topology == "both" else [args.topology]):
        rows = run_topology(topology, args.tasks)
        floor = rows[0][1]
        for name, rate, lat in rows:
            q = statistics.quantiles(lat, n=10)
            print(f"{name:48s} {rate:7.2f} {statistics.median(lat):7.1f} {q[8]:7.1f} {rate / floor:15.2f}x", flush=True)


if __name__ == "__main__":
    main()
