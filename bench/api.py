"""Benchmark: stock Prefect execution beside the warm worker, through the gateway, in one run.

    uv run python bench/api.py [--tasks 50] [--idle 10] [--topology embedded|postgres|both]

For each topology and executor it starts the whole service in processes on a fresh server:
- embedded: Prefect server on SQLite; stock = ``serve()`` (bench/stock_serve.py), warm =
  ``deployments/serve.py`` (the warm worker, as ``make up`` runs it);
- postgres: Prefect server and our database on PostgreSQL, ``prefect deploy --all`` from
  prefect.yaml and two workers with --limit 10; stock = ``--type process`` on a process pool, warm =
  ``--type eotasks-warm`` on a warm pool;
then, against the gateway, with small ``bandmath`` NDVI tasks over a polygon of the real sample:
  (a) idle latency: N sequential tasks, POST -> finished (polled every 50 ms), p50 and max;
  (b) burst: M tasks POSTed at once, runs/s, p50/p90 POST -> finished, crashed/failed count;
  (c) machine CPU-seconds per run during the burst (every process: server, gateway, workers,
      flow runs, from /proc/stat), less the idle machine's rate measured just before.
Prints a table and the warm/stock ratios. Loopback only; bounded in count and time.
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
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import POLYGON, REPO, SAMPLE, VIEW_ID

from eotasks.catalog.ingest import ingest_folder
from eotasks.db import create_api_key, get_engine, init_db
from eotasks.launcher import Service, free_port, service_env

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEADLINE_S = 900  # no single phase may run longer than this


def cpu_seconds() -> float:
    """Busy CPU-seconds of the whole machine so far (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu() -> dict[int, tuple[str, float]]:
    """Each live process's CPU-seconds, its own plus those of the children it has reaped (so a
    forkserver carries its finished flow runs), with the part of the service it belongs to."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = sum(int(x) for x in fields[11:15]) / tick  # utime, stime, cutime, cstime
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm.startswith("postgres") or cmd.startswith("postgres"):
            part = "PostgreSQL"
        elif "prefect server start" in cmd:
            part = "Prefect server"
        elif "gateway.app" in cmd:
            part = "gateway"
        elif "worker start" in cmd or "deployments.serve" in cmd or "stock_serve" in cmd:
            part = "worker"
        elif "python" in cmd and "bench/api.py" not in cmd:  # the forkserver and the runs it forked
            part = "flow runs (forkserver and its children)"
        else:
            continue  # this benchmark's own client, and the rest of the machine
        out[int(entry.name)] = (part, seconds)
    return out


def cpu_by_part(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    parts: dict[str, float] = {}
    for pid, (part, seconds) in after.items():
        parts[part] = parts.get(part, 0.0) + seconds - (before[pid][1] if pid in before else 0.0)
    return parts


def call(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """Like Prefect's own client: retry 5xx (SQLite "database is locked" under bursts) and resets."""
    for attempt in range(30):
        try:
            r = client.request(method, url, **kwargs)
            if r.status_code < 500:
                return r
        except httpx.TransportError:
            pass
        time.sleep(min(0.2 * 2**attempt, 2.0))
    raise RuntimeError(f"{method} {url} kept failing")


@dataclass
class Figures:
    name: str
    idle: list[float]
    burst_rate: float
    burst: list[float]
    bad: int
    cpu_per_run: float
    cpu_parts: dict[str, float]


class Gateway:
    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.client = httpx.Client(timeout=60)
        self.body = {"type": "bandmath", "params": {"view_id": VIEW_ID, "bm_type": "NDVI", "geometry": POLYGON}}

    def post(self) -> str:
        r = call(self.client, "POST", f"{self.base}/api", params={"api_key": self.key}, json=self.body)
        assert r.status_code == 202, r.text
        return r.json()["task_id"]

    def ended(self, task_id: str) -> str | None:
        r = call(self.client, "GET", f"{self.base}/api/{task_id}", params={"api_key": self.key, "redirect": "false"})
        kind = r.json().get("task_type")
        return kind if kind in ("finished", "failed", "cancelled") else None

    def run_to_end(self, poll: float) -> tuple[float, str]:
        posted = time.perf_counter()
        task_id = self.post()
        deadline = posted + DEADLINE_S
        while time.perf_counter() < deadline:
            if kind := self.ended(task_id):
                return time.perf_counter() - posted, kind
            time.sleep(poll)
        raise TimeoutError(task_id)


def measure(name: str, gateway: Gateway, idle_n: int, burst_n: int) -> Figures:
    gateway.run_to_end(0.05)  # warm-up: the first run pays one-off costs (imports, caches) in either mode
    idle = []
    for _ in range(idle_n):
        latency, kind = gateway.run_to_end(0.05)
        assert kind == "finished", kind
        idle.append(latency)
    time.sleep(3)
    c0, t0 = cpu_seconds(), time.perf_counter()
    time.sleep(5)
    idle_cpu_rate = (cpu_seconds() - c0) / (time.perf_counter() - t0)

    c0, t0, p0 = cpu_seconds(), time.perf_counter(), process_cpu()
    with cf.ThreadPoolExecutor(4) as pool:
        posted = list(pool.map(lambda _: (time.perf_counter(), gateway.post()), range(burst_n)))

    def finish(item: tuple[float, str]) -> tuple[float, float, str]:
        start, task_id = item
        while time.perf_counter() - t0 < DEADLINE_S:
            if kind := gateway.ended(task_id):
                return time.perf_counter(), time.perf_counter() - start, kind
            time.sleep(0.5)  # gentle polling: the benchmark must not load the server it measures
        raise TimeoutError(task_id)

    with cf.ThreadPoolExecutor(8) as pool:
        ends = list(pool.map(finish, posted))
    elapsed = max(e for e, _, _ in ends) - t0
    busy = cpu_seconds() - c0 - idle_cpu_rate * elapsed
    parts = {k: v / burst_n for k, v in cpu_by_part(p0, process_cpu()).items()}
    return Figures(
        name,
        idle,
        burst_n / elapsed,
        [lat for _, lat, _ in ends],
        sum(k != "finished" for _, _, k in ends),
        busy / burst_n,
        parts,
    )


def run_topology(topology: str, executor: str, idle_n: int, burst_n: int) -> Figures:
    root = Path(tempfile.mkdtemp(prefix=f"eotasks-bench-{topology}-{executor}-"))
    prefect_port, gateway_port = free_port(), free_port()
    extra = {
        "EOTASKS_PORT": str(gateway_port),
        "EOTASKS_CODE_DIR": str(REPO),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "EOTASKS_SERVE_LIMIT": "10",
        "EOTASKS_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    dbs = []
    if topology == "postgres":
        suffix = uuid.uuid4().hex[:8]
        dbs = [f"bench_prefect_{suffix}", f"bench_app_{suffix}"]
        with get_engine(f"{PG}/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            for name in dbs:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        extra.update(
            PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbs[0]}",
            EOTASKS_DATABASE_URL=f"{PG}/{dbs[1]}",
        )
    env = service_env(root, prefect_port, extra)
    db_url = env.get("EOTASKS_DATABASE_URL") or f"sqlite:///{root / 'eotasks.db'}"
    init_db(db_url)
    ingest_folder(SAMPLE, "sentinel2", view_id=VIEW_ID, platform="S2A", url=db_url)
    key, _ = create_api_key("bench", url=db_url)
    service = Service(env, root / "logs")
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        if topology == "embedded":
            if executor == "stock":
                proc = service.start("serve", [sys.executable, str(REPO / "bench" / "stock_serve.py")])
                deadline = time.monotonic() + 120
                while httpx.get(f"{env['PREFECT_API_URL']}/deployments/name/bandmath/eotasks").status_code != 200:
                    assert proc.poll() is None and time.monotonic() < deadline, "stock serve did not start"
                    time.sleep(0.5)
            else:
                service.start_serve(["bandmath/eotasks"])
        else:

            def prefect(*args: str) -> None:
                subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO, env=env, check=True, capture_output=True)

            pool_type = "process" if executor == "stock" else "eotasks-warm"
            prefect("work-pool", "create", "eotasks", "--type", pool_type)
            prefect("--no-prompt", "deploy", "--all")
            for name in ("worker-a", "worker-b"):
                service.start(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "prefect",
                        "worker",
                        "start",
                        "--pool",
                        "eotasks",
                        "--type",
                        pool_type,
                        "--limit",
                        "10",
                        "--name",
                        name,
                        "--install-policy",
                        "never",
                    ],
                )
        service.start_gateway("127.0.0.1", gateway_port)
        gateway = Gateway(f"http://127.0.0.1:{gateway_port}", key)
        return measure(f"{topology}, {executor}", gateway, idle_n, burst_n)
    finally:
        service.stop(grace=5)
        if dbs:
            with get_engine(f"{PG}/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
                for name in dbs:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50, help="tasks in the burst")
    parser.add_argument("--idle", type=int, default=10, help="sequential tasks for the idle latency")
    parser.add_argument("--topology", choices=["embedded", "postgres", "both"], default="both")
    parser.add_argument("--executor", choices=["stock", "warm", "both"], default="both")
    args = parser.parse_args()
    print(
        f"bandmath NDVI through the gateway; {args.idle} sequential, then {args.tasks} at once; {os.cpu_count()} cores",
        flush=True,
    )
    print(
        f"{'':20s} {'idle p50':>9s} {'idle max':>9s} {'burst runs/s':>13s} {'p50':>6s} {'p90':>6s} "
        f"{'not ok':>7s} {'CPU-s/run':>10s}",
        flush=True,
    )
    for topology in ["embedded", "postgres"] if args.topology == "both" else [args.topology]:
        rows = {}
        for executor in ["stock", "warm"] if args.executor == "both" else [args.executor]:
            f = rows[executor] = run_topology(topology, executor, args.idle, args.tasks)
            q = statistics.quantiles(f.burst, n=10)
            print(
                f"{f.name:20s} {statistics.median(f.idle):8.2f}s {max(f.idle):8.2f}s {f.burst_rate:13.2f} "
                f"{statistics.median(f.burst):5.1f}s "
                f"{q[8]:5.1f}s {f.bad:7d} {f.cpu_per_run:10.2f}",
                flush=True,
            )
            print(
                "    CPU-s per run by part: "
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(f.cpu_parts.items(), key=lambda kv: -kv[1])),
                flush=True,
            )
        if len(rows) == 2:
            s, w = rows["stock"], rows["warm"]
            print(
                f"{topology + ', warm/stock':20s} {statistics.median(w.idle) / statistics.median(s.idle):8.2f}x {'':9s} "
                f"{w.burst_rate / s.burst_rate:12.2f}x {'':6s} {'':6s} {'':7s} {w.cpu_per_run / s.cpu_per_run:9.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
