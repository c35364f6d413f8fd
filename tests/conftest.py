"""Test settings: every test session writes under its own temporary folder, never the user's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="eotasks-test-"))
os.environ["EOTASKS_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # nothing leaves loopback
os.environ.pop("EOTASKS_DATABASE_URL", None)
os.environ.pop("EOTASKS_STORE_URL", None)

from eotasks.sample import CROP_DIR as SAMPLE_CROP_DIR  # noqa: E402
from eotasks.settings import reset_settings  # noqa: E402

reset_settings()

CROP_DIR = SAMPLE_CROP_DIR
SAMPLE_VIEW_ID = "S2/18/S/VG/2020/6/15/0"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from eotasks.db import init_db

    url = f"sqlite:///{tmp_path / 'test.db'}"
    init_db(url)
    return url


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """A moto S3 server on loopback with an empty bucket 'eotasks-results'; yields its endpoint."""
    import sys

    import boto3

    from eotasks.launcher import Service, free_port, service_env, wait_http

    root = tmp_path_factory.mktemp("moto")
    port = free_port()
    service = Service(service_env(root, 0), root / "logs")
    service.start("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", 60, what="moto server")
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        ).create_bucket(Bucket="eotasks-results")
        yield endpoint
    finally:
        service.stop()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real Prefect server (SQLite) on a free loopback port for every end-to-end test."""
    from eotasks.launcher import Service, free_port, service_env

    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    service = Service(service_env(root, port), root / "logs")
    try:
        service.start_prefect_server(port, timeout=180)
        yield port
    finally:
        service.stop()
