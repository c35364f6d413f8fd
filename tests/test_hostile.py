"""A hostile or careless client against a real gateway (uvicorn, in this process; Prefect faked):
while one client's request is costly or waits on a slow resolver, every other client is answered
at once; costs are refused before any work; chunked bodies, unencodable callback URLs, oversized
answers are refused with the right code naming the field."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from eotasks.db import CallbackRecord, create_api_key, init_db, session
from eotasks.launcher import free_port
from gateway.app import create_app
from tests.test_gateway import FakeRuns, thin_strips

VIEW = "S2/18/S/VG/2020/6/15/0"
POLY = {"type": "Polygon", "coordinates": [[[-75.65, 37.65], [-75.60, 37.64], [-75.62, 37.70], [-75.65, 37.65]]]}
SLOW_HOST = "slow-resolver.example"


@pytest.fixture(scope="module")
def slow_resolver():
    """getaddrinfo that takes 2 s for SLOW_HOST and then answers a private address (so nothing is
    ever contacted): what a slow or hostile DNS server does to the process that asks."""
    real = socket.getaddrinfo
    calls = []

    def resolve(host, port, *args, **kwargs):
        if host == SLOW_HOST:
            calls.append(time.monotonic())
            time.sleep(2.0)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port or 80))]
        return real(host, port, *args, **kwargs)

    socket.getaddrinfo = resolve
    yield calls
    socket.getaddrinfo = real


@pytest.fixture(scope="module")
def gateway(slow_resolver):
    init_db()
    server = uvicorn.Server(uvicorn.Config(create_app(FakeRuns()), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def key():
    return create_api_key("hostile")[0]


@contextmanager
def probing(base: str):
    """GET /health in a loop while the block runs; the slowest answer, in seconds."""
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                start = time.monotonic()
                assert client.get(f"{base}/health").status_code == 200
                latencies.append(time.monotonic() - start)
                time.sleep(0.02)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(0.2)
    try:
        yield latencies
    finally:
        stop.set()
        thread.join(timeout=30)


def many_fields(n: int) -> dict:
    features = []
    for i in range(n):
        x, y = -75.66 + (i % 80) * 0.0006, 37.64 + (i // 80) * 0.0006
        ring = [[x, y], [x + 0.0004, y], [x + 0.0004, y + 0.0004], [x, y + 0.0004], [x, y]]
        features.append({"type": "Feature", "id": i, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}


@pytest.fixture
def gateway_process(gateway):
    """The same gateway in a process of its own (on the same database), as it runs in production;
    for one test only (its callback sender would otherwise send the other tests' callbacks)."""
    import subprocess
    import sys
    from pathlib import Path

    from eotasks.launcher import wait_http

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_gateway", str(port)], cwd=Path(__file__).parent.parent)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc, "gateway")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_costly_bodies_never_hold_up_other_clients(gateway_process, key):
    """A thin-strip MultiPolygon is refused within a second; 5,000 fields (seconds of geometry
    checks) are validated off the event loop: /health answers within a quarter second throughout."""
    import json

    strips = json.dumps(
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "geometry": thin_strips()}}, separators=(",", ":")
    )
    fields = json.dumps(
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-01-31", "bm_type": "NDVI", "fields": many_fields(5000)},
        },
        separators=(",", ":"),
    )
    gateway, json_type = gateway_process, {"Content-Type": "application/json"}
    with probing(gateway) as latencies, httpx.Client(timeout=60) as client:
        start = time.monotonic()
        r = client.post(f"{gateway}/api", params={"api_key": key}, content=strips, headers=json_type)
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.geometry", r.text
        assert time.monotonic() - start < 1.0
        start = time.monotonic()
        r = client.post(f"{gateway}/api", params={"api_key": key}, content=fields, headers=json_type)
        validating = time.monotonic() - start
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "type", r.text  # valid; mt_stats is faked away
    assert len(latencies) > 10 and max(latencies) < 0.25, (max(latencies), validating)
    print(f"5,000 fields validated in {validating:.2f} s; /health at most {max(latencies) * 1000:.0f} ms meanwhile")


def test_a_slow_resolver_delays_nobody_else(gateway, key, slow_resolver):
    """Five submissions whose callback host takes 2 s to resolve, and five callbacks in the outbox
    to the same host: each waits on its own lookup; every other client is answered at once."""
    with session() as s:
        for i in range(5):
            s.add(
                CallbackRecord(id=f"slow-{i}", task_id=f"slow-task-{i}", url=f"http://{SLOW_HOST}/hook/{i}", body={"task_id": i})
            )
        s.commit()
    results: list[httpx.Response] = []

    def submit(i: int) -> None:
        body = {
            "type": "bandmath",
            "params": {"view_id": VIEW, "bm_type": "NDVI", "geometry": POLY},
            "callback_url": f"http://{SLOW_HOST}/t/{i}",
        }
        results.append(httpx.post(f"{gateway}/api", params={"api_key": key}, json=body, timeout=30))

    with probing(gateway) as latencies:
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with session() as s:
                rows = [s.get(CallbackRecord, f"slow-{i}") for i in range(5)]
            if all(r.done_at is not None for r in rows):
                break
            time.sleep(0.2)
    assert [r.status_code for r in results] == [400] * 5
    assert all("private" in r.json()["error"] for r in results)
    assert all(r.outcome == "gave up" and "private" in r.last_result for r in rows), [(r.outcome, r.last_result) for r in rows]
    assert len(slow_resolver) >= 10  # every lookup really was slow
    assert max(latencies) < 0.25, max(latencies)


def test_a_chunked_body_over_the_limit_is_413(gateway, key):
    def chunks():
        yield b'{"type": "bandmath", "params": {"reference": "'
        for _ in range(1200):
            yield b"x" * 1000
        yield b'"}}'

    r = httpx.post(
        f"{gateway}/api", params={"api_key": key}, content=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert r.status_code == 413 and r.json()["status"] is False and "larger than" in r.json()["error"]


@pytest.mark.parametrize(
    "url",
    ["http://exa mple.com/hook", "http://example.com/a\x07b", f"http://{'ü' * 70}.example/hook", "http://example.com:99999/hook"],
)
def test_a_callback_url_delivery_could_not_encode_is_refused(gateway, key, url):
    body = {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "geometry": POLY}, "callback_url": url}
    r = httpx.post(f"{gateway}/api", params={"api_key": key}, json=body, timeout=30)
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "callback_url", r.text


def test_an_unencodable_callback_in_the_outbox_is_given_up_at_once(gateway):
    with session() as s:
        s.add(CallbackRecord(id="bad-url", task_id="bad-url-task", url=f"http://{'ü' * 70}.example/hook", body={"x": 1}))
        s.commit()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with session() as s:
            row = s.get(CallbackRecord, "bad-url")
        if row.done_at is not None:
            break
        time.sleep(0.2)
    assert row.outcome == "gave up" and row.attempts == 1 and row.last_result.startswith("refused"), (
        row.outcome,
        row.attempts,
        row.last_result,
    )
