"""Rate limits and daily quotas hold across gateway processes: two real gateways on one database
(and, for the rate limit, on one Redis), requests alternating between them."""

from __future__ import annotations

import concurrent.futures as cf
import socket
import uuid

import httpx
import pytest

from eotasks.db import create_api_key
from eotasks.launcher import free_port
from tests.conftest import SAMPLE_VIEW_ID
from tests.stack import Stack

PER_MINUTE = 12
POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-75.6595, 37.6985], [-75.6420, 37.6960], [-75.6500, 37.7160], [-75.6595, 37.6985]]],
}


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


STORAGES = ["database", pytest.param("redis", marks=pytest.mark.skipif(not redis_up(), reason="no Redis on 127.0.0.1:6379"))]


@pytest.fixture(scope="module", params=STORAGES)
def two_gateways(request, prefect_server, tmp_path_factory):
    extra = {"EOTASKS_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE)}
    if request.param == "redis":
        extra["EOTASKS_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    stack = Stack(tmp_path_factory.mktemp(f"limits-{request.param}"), prefect_server, extra, deployments=["bandmath/eotasks"])
    try:
        port = free_port()
        stack.service.start_gateway("127.0.0.1", port, name="gateway-2")
        yield stack, [stack.base, f"http://127.0.0.1:{port}"], request.param
    finally:
        stack.stop()


def test_rate_limit_is_one_count_across_gateways(two_gateways):
    stack, bases, _ = two_gateways
    key, _ = create_api_key(f"rate-{uuid.uuid4().hex[:6]}", url=stack.db_url)
    codes, retry_after = [], []
    with httpx.Client(timeout=30) as client:
        for i in range(2 * PER_MINUTE):
            r = client.get(f"{bases[i % 2]}/api", headers={"x-api-key": key})
            codes.append(r.status_code)
            if r.status_code == 429:
                retry_after.append(int(r.headers["Retry-After"]))
                assert "Rate limit" in r.json()["error"]
    assert codes.count(200) == PER_MINUTE, codes  # per process it would be twice as many
    assert codes.count(429) == PER_MINUTE and set(codes) == {200, 429}
    assert all(1 <= s <= 60 for s in retry_after)


def test_daily_quota_is_spent_at_submission_across_gateways(two_gateways):
    stack, bases, storage = two_gateways
    if storage == "redis":
        pytest.skip("the quota is counted in the database whatever the rate limit's storage (one run is enough)")
    key, _ = create_api_key(f"quota-{uuid.uuid4().hex[:6]}", daily_quota=3, url=stack.db_url)
    body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": POLYGON}}

    def post(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            return client.post(f"{bases[i % 2]}/api", headers={"x-api-key": key, "Idempotency-Key": f"q-{i}"}, json=body)

    with cf.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    codes = [r.status_code for r in answers]
    assert sorted(codes) == [202, 202, 202, 429, 429, 429], [r.text for r in answers]
    refused = [r for r in answers if r.status_code == 429]
    assert all("daily quota of 3" in r.json()["error"] and r.json()["details"][0]["field"] == "api_key" for r in refused)
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    # A retry of an accepted task (same Idempotency-Key and body) is that task, not a refusal.
    accepted = next(i for i, r in enumerate(answers) if r.status_code == 202)
    retry = httpx.post(f"{bases[1]}/api", headers={"x-api-key": key, "Idempotency-Key": f"q-{accepted}"}, json=body, timeout=60)
    assert retry.status_code == 202 and retry.json()["task_id"] == answers[accepted].json()["task_id"]
    # Three tasks exist for the key, whichever gateway took them.
    listed = httpx.get(f"{bases[0]}/api", headers={"x-api-key": key}, timeout=30).json()
    assert listed["meta"]["found"] == 3
