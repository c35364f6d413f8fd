"""Load: how many GETs one gateway process answers, and how fast, while tasks run; bounded in time.

    uv run python bench/load.py [--clients 10] [--seconds 20] [--tasks 20] [--mixed-seconds 120] [--client raw|httpx|both]

Starts the embedded default in processes (Prefect server on SQLite, the warm worker, one gateway
process), with the rate limit as configured by default but high enough for the clients (every GET
is still counted in the database, as in production), then:
  (a) finished: ``--clients`` client processes GET one finished task as fast as they can for
      ``--seconds`` s (target: >= 500 GET/s, p99 <= 50 ms, no 5xx);
  (b) busy: the same, while ``--tasks`` tasks of all four types run (and must all end);
  (c) mixed (``--mixed-seconds`` > 0): one poller per task, 10 GET/s each, as issue 8 measured.
The clients are ``raw`` (a keep-alive socket writing the request as bytes, as wrk or hey do) and
``httpx`` (what a Python program polls with); both by default, the busy case with the first.
Prints GET/s, p50/p99 and the 5xx count of each, and exits 1 on a 5xx or a lost task. Every
request goes to 127.0.0.1; the loops stop by themselves.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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

ENDED = ("finished", "failed", "cancelled")


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


def ended(r: httpx.Response) -> str | None:
    if r.status_code == 303:
        return "finished"
    if r.status_code != 200:
        return None
    body = r.json()
    return body.get("task_type") if body.get("task_type") in ENDED else ("finished" if "result" in body else None)


def hammer(url: str, key: str, until: float, out: mp.Queue, client: str = "httpx") -> None:
    """One client process: GET as fast as answers come, until ``until`` (time.time())."""
    if client == "raw":
        return hammer_raw(url, key, until, out)
    latencies, codes = [], {}
    with httpx.Client(timeout=30, headers={"x-api-key": key}) as c:
        while time.time() < until:
            t0 = time.perf_counter()
            r = c.get(url, params={"redirect": "false"})
            latencies.append(time.perf_counter() - t0)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    out.put((latencies, codes))


def hammer_raw(url: str, key: str, until: float, out: mp.Queue) -> None:
    """The same loop as a load generator (wrk, hey) runs it: one keep-alive connection, the request
    written as bytes, the answer read by its Content-Length. httpx spends more CPU per request than
    the gateway does; on a 2-core machine shared by ten clients that measures httpx, not the gateway."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (f"GET {parts.path}?redirect=false HTTP/1.1\r\nHost: {parts.netloc}\r\nx-api-key: {key}\r\n\r\n").encode()
    latencies, codes = [], {}
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    while time.time() < until:
        t0 = time.perf_counter()
        sock.sendall(request)
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        buffer = buffer[length:]
        latencies.append(time.perf_counter() - t0)
        status = int(head.split(b" ", 2)[1])
        codes[status] = codes.get(status, 0) + 1
    sock.close()
    out.put((latencies, codes))


def clients(n: int, url: str, key: str, seconds: float, client: str = "httpx") -> tuple[list[float], dict[int, int], float]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = time.time() + 3  # every process imported and connected before the window opens
    procs = [ctx.Process(target=_delayed, args=(start, url, key, start + seconds, out, client)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    latencies = [x for lat, _ in results for x in lat]
    codes: dict[int, int] = {}
    for _, c in results:
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
    return latencies, codes, seconds


def _delayed(start: float, url: str, key: str, until: float, out: mp.Queue, client: str = "httpx") -> None:
    time.sleep(max(0.0, start - time.time()))
    hammer(url, key, until, out, client)


def report(name: str, latencies: list[float], codes: dict[int, int], seconds: float) -> int:
    q = statistics.quantiles(latencies, n=100)
    five = sum(v for k, v in codes.items() if k >= 500)
    print(
        f"{name:<18} {len(latencies) / seconds:7.0f} GET/s   p50 {1000 * statistics.median(latencies):5.1f} ms   "
        f"p99 {1000 * q[98]:6.1f} ms   codes {dict(sorted(codes.items()))}   5xx {five}"
    )
    return five


def wait_all(client: httpx.Client, base: str, key: str, tasks: list[str], timeout: float) -> dict[str, str]:
    done: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(tasks) and time.monotonic() < deadline:
        listing = client.get(f"{base}/api", params={"limit": 500, "wait": 10}, headers={"x-api-key": key}).json()
        for t in listing["tasks"]:
            if t["task_id"] in tasks and t["task_type"] in ENDED:
                done[t["task_id"]] = t["task_type"]
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--mixed-seconds", type=float, default=0, help="also the old mixed poll (0: skip)")
    parser.add_argument("--redis", default=None, help="count the rate limit in this Redis (redis://127.0.0.1:6379/0)")
    parser.add_argument("--client", choices=("raw", "httpx", "both"), default="both", help="the polling clients' HTTP code")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="eotasks-load-"))
    prefect_port, gateway_port = free_port(), free_port()
    env = service_env(
        root,
        prefect_port,
        {
            "EOTASKS_PORT": str(gateway_port),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "EOTASKS_RATE_LIMIT_PER_MINUTE": "10000000",  # counted, never reached
            **({"EOTASKS_REDIS_URL": args.redis} if args.redis else {}),
        },
    )
    db_url = f"sqlite:///{root / 'eotasks.db'}"
    init_db(db_url)
    ingest_folder(SAMPLE, "sentinel2", view_id=VIEW_ID, platform="S2A", url=db_url)
    generate_demo(root / "demo", url=db_url)
    key, _ = create_api_key("load", url=db_url)
    service = Service(env, root / "logs")
    failures = 0
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        service.start_serve(["bandmath/eotasks", "lbe/eotasks", "jpeg/eotasks", "mt_stats/eotasks"])
        service.start_gateway("127.0.0.1", gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        client = httpx.Client(timeout=90, headers={"x-api-key": key})
        print(f"one gateway process; {args.clients} client processes for {args.seconds:g} s each; {os.cpu_count()} cores")

        first = client.post(f"{base}/api", json=bodies(1)[0]).json()["task_id"]
        while ended(client.get(f"{base}/api/{first}", params={"wait": 30, "redirect": "false"})) is None:
            pass
        url = f"{base}/api/{first}"
        kinds = ("raw", "httpx") if args.client == "both" else (args.client,)
        for kind in kinds:
            failures += report(f"finished, {kind}", *clients(args.clients, url, key, args.seconds, kind))

        tasks = [client.post(f"{base}/api", json=b).json()["task_id"] for b in bodies(args.tasks)]
        failures += report(f"busy ({args.tasks}), {kinds[0]}", *clients(args.clients, url, key, args.seconds, kinds[0]))
        done = wait_all(client, base, key, tasks, 600)
        lost = [t for t in tasks if t not in done]
        print(f"the {len(tasks)} tasks: {sum(v == 'finished' for v in done.values())} finished, lost {len(lost)}")
        failures += len(lost) + sum(v != "finished" for v in done.values())

        if args.mixed_seconds > 0:
            failures += mixed(client, base, key, args.tasks, args.mixed_seconds)
        client.close()
        if failures:
            sys.exit(1)
    finally:
        service.stop(grace=5)


def mixed(client: httpx.Client, base: str, key: str, n: int, seconds: float) -> int:
    """Issue 8's load: one poller per task, 10 GET/s each, while the tasks run."""
    tasks = [client.post(f"{base}/api", json=b).json()["task_id"] for b in bodies(n)]
    latencies: list[float] = []
    codes: dict[int, int] = {}
    done: set[str] = set()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def poll(task_id: str) -> None:
        with httpx.Client(timeout=30, headers={"x-api-key": key}) as c:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                r = c.get(f"{base}/api/{task_id}", params={"redirect": "false"})
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took)
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    if ended(r):
                        done.add(task_id)
                time.sleep(max(0.0, 0.1 - took))

    pollers = [threading.Thread(target=poll, args=(t,)) for t in tasks]
    for p in pollers:
        p.start()
    for p in pollers:
        p.join()
    lost = [t for t in tasks if t not in done]
    print(f"mixed: {n} tasks polled 10/s each; lost {len(lost)}")
    return report("mixed", latencies, codes, seconds) + len(lost)


if __name__ == "__main__":
    main()
