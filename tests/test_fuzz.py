"""An OpenAPI fuzzer (schemathesis) over every route of the gateway: no input gives a 5xx.

Prefect is replaced by the gateway tests' fake runs layer (the fuzzer checks the gateway's handling of
input, not flows); the key's rate limit is off, so every generated request reaches its handler.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from eotasks.db import create_api_key, init_db
from eotasks.usage import RateLimit
from gateway.app import create_app
from gateway.auth import issue_token
from tests.test_gateway import FakeRuns

init_db()
APP = create_app(FakeRuns())
APP.state.rate_limit = RateLimit(0)  # off: the fuzzer must reach every handler
KEY, ROW = create_api_key("fuzzer")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def lifespan():
    with TestClient(APP):  # runs the app's start-up (database, sender) around the module
        yield


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gives_a_server_error(case):
    openeo = case.path.startswith(("/openeo", "/.well-known"))
    # openEO's routes take the key's bearer token (SPEC §8), the others the key itself.
    auth = {"Authorization": f"Bearer basic//{issue_token(ROW)}"} if openeo and "credentials" not in case.path else {}
    case.headers = {**(case.headers or {}), "x-api-key": KEY, **auth}
    try:
        long_poll = float(str((case.query or {}).get("wait"))) > 1
    except ValueError:
        long_poll = False
    if long_poll:
        case.query["wait"] = 1  # a valid long poll waits as long as asked; tests/test_client.py times them
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert "Traceback" not in response.text
        if openeo:  # openEO's error body
            assert body["code"] and body["message"] and body["id"], body
        else:
            assert body["status"] is False and body["error"], body
