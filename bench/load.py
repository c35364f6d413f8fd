"""Load: mixed tasks and pollers against the whole embedded service, on loopback, bounded in time.

    uv run python bench/load.py [--tasks 20] [--seconds 120] [--rate 10]

Starts the embedded default in processes (Prefect server on SQLite, the warm worker, the gateway),
then submits ``--tasks`` tasks of all four types at once and runs one poller per task that GETs its
task ``--rate`` times a second for ``--seconds`` seconds (stopping early only once every task has
ended). Prints the 5xx count (must be 0), lost tasks (tasks not ended by the end: must be 0), and
GET latency p50/p99. Every request goes to 127.0.0.1; the loops stop by themselves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import POLYGON, REPO, SAMPLE, VIEW_ID  # noqa: F401  (puts the repository on sys.path)

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.ingest import ingest_folder
from eotasks.db import create_api_key, init_db
from eotasks.launcher import Service, free_port, service_env


def bodies(n: int) -> list[dict]:
    field = demo_fields()[0]["geometry"]
    kinds = [
        {"type": "bandmath", "params": {"view_id": VIEW_ID, "bm_type": "NDVI", "geometry": POLYGON}},
        {"type": "lbe", "params": {"view_id": VIEW_ID, "bands": ["B04", "B03", "B02"], "geometry": POLYGON}},
        {"type": "jpeg", "params": {"view_id": VIEW_ID, "bm_type": "B04,B03,B02", "geometry": POLYGON, "format": "png"}},
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-12-31",
                "bm_type": "NDVI",
                "geometry": field,
                "sensors": ["sentinel2l2a", "landsat8"],
            },
        },
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--rate", type=float, default=10, help="GETs per second per poller")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="eotasks-load-"))
    prefect_port, gateway_port = free_port(), free_port()
    env = service_env(
        root,
        prefect_port,
        {"EOTASKS_PORT": str(gateway_port), "PREFECT_LOGGING_LEVEL": "WARNING", "EOTASKS_RATE_LIMIT_PER_MINUTE": "0"},
    )  # the pollers alone exceed a client's limit
    db_url = f"sqlite:///{root / 'eotasks.db'}"
    init_db(db_url)
    ingest_folder(SAMPLE, "sentinel2", view_id=VIEW_ID, platform="S2A", url=db_url)
    generate_demo(root / "demo", url=db_url)
    key, _ = create_api_key("load", url=db_url)
    service = Service(env, root / "logs")
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        service.start_serve(["bandmath/eotasks", "lbe/eotasks", "jpeg/eotasks", "mt_stats/eotasks"])
        service.start_gateway("127.0.0.1", gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        client = httpx.Client(timeout=30)
        five_xx: list[str] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def submit(body: dict) -> str:
            r = client.post(f"{base}/api", params={"api_key": key}, json=body)
            if r.status_code >= 500:
                with lock:
                    five_xx.append(f"POST {r.status_code}")
            r.raise_for_status()
            return r.json()["task_id"]

        started = time.monotonic()
        tasks = [submit(b) for b in bodies(args.tasks)]
        ended: dict[str, str] = {}
        ended_at: dict[str, float] = {}
        stop_at = started + args.seconds

        def poll(task_id: str) -> None:
            with httpx.Client(timeout=30) as c:
                while time.monotonic() < stop_at:  # clients keep polling for the whole window
                    t0 = time.perf_counter()
                    r = c.get(f"{base}/api/{task_id}", params={"api_key": key, "redirect": "false"})
                    took = time.perf_counter() - t0
                    with lock:
                        latencies.append(took)
                        if r.status_code >= 500:
                            five_xx.append(f"GET {r.status_code}")
                        elif r.status_code == 200 and (
                            r.json().get("task_type") in ("finished", "failed", "cancelled") or "result" in r.json()
                        ):
                            ended.setdefault(task_id, r.json().get("task_type") or "finished")
                            ended_at.setdefault(task_id, time.monotonic() - started)
                    time.sleep(max(0.0, 1 / args.rate - took))

        pollers = [threading.Thread(target=poll, args=(t,)) for t in tasks]
        for p in pollers:
            p.start()
        for p in pollers:
            p.join()
        lost = [t for t in tasks if t not in ended]
        q = statistics.quantiles(latencies, n=100)
        window = time.monotonic() - started
        print(
            f"{len(tasks)} tasks, {len(pollers)} pollers aiming at {args.rate:g} GET/s each for {args.seconds:g} s "
            f"on {os.cpu_count()} cores; "
            f"last task ended {max(ended_at.values(), default=float('nan')):.0f} s after the POSTs; "
            f"{len(latencies) / window:.0f} GET/s served"
        )
        print(
            f"5xx: {len(five_xx)}  lost tasks: {len(lost)}  failed: {sum(v == 'failed' for v in ended.values())}  "
            f"GETs: {len(latencies)}  GET p50 {1000 * statistics.median(latencies):.0f} ms  p99 {1000 * q[98]:.0f} ms"
        )
        if five_xx or lost:
            sys.exit(1)
    finally:
        service.stop(grace=5)


if __name__ == "__main__":
    main()
