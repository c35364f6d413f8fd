"""A real gateway process with Prefect faked away (tests.test_gateway.FakeRuns), for tests that
time what other clients see: a separate process, as in production, so the test's own threads, heap
and garbage collections are not counted as the gateway's.

    python -m tests.fake_gateway PORT
"""

from __future__ import annotations

import sys

import uvicorn

from eotasks.db import init_db
from gateway.app import create_app
from tests.test_gateway import FakeRuns

if __name__ == "__main__":
    init_db()
    uvicorn.run(create_app(FakeRuns()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
