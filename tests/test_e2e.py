"""End to end: real Prefect server, served deployments and gateway processes; local store and S3.

One Prefect server for the module; for each store a serve process and a gateway are started with
the same environment `eotasks up` uses, and stopped by process id.
"""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
from rasterio.io import MemoryFile

from eotasks.catalog.ingest import ingest_folder
from eotasks.db import create_api_key, init_db
from eotasks.launcher import Service, free_port, service_env
from tests.conftest import CROP_DIR, SAMPLE_VIEW_ID
from tests.reference import independent_ndvi

pytestmark = pytest.mark.e2e

TRIANGLE = [(-75.6595, 37.6985), (-75.6420, 37.6960), (-75.6500, 37.7160), (-75.6595, 37.6985)]
GEOMETRY = {"type": "Polygon", "coordinates": [[list(p) for p in TRIANGLE]]}


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    service = Service(service_env(root, port), root / "logs")
    try:
        service.start_prefect_server(port, timeout=180)
        yield port
    finally:
        service.stop()


def start_stack(root: Path, prefect_port: int, extra: dict[str, str]) -> tuple[Service, str, str]:
    """Database with the real sample and a key, then serve + gateway; returns (service, base URL, key)."""
    gateway_port = free_port()
    env = service_env(root, prefect_port, {"EOTASKS_PORT": str(gateway_port), **extra})
    db_url = f"sqlite:///{root / 'eotasks.db'}"
    init_db(db_url)
    ingest_folder(CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A", url=db_url)
    key, _ = create_api_key("e2e", url=db_url)
    service = Service(env, root / "logs")
    try:
        service.start_serve(["bandmath/eotasks"])
        service.start_gateway("127.0.0.1", gateway_port)
    except Exception:
        service.stop()
        raise
    return service, f"http://127.0.0.1:{gateway_port}", key


def wait_for_end(client: httpx.Client, base: str, key: str, task_id: str, timeout: float = 180) -> httpx.Response:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        r = client.get(f"{base}/api/{task_id}", params={"api_key": key})
        if r.status_code == 303 or r.json().get("task_type") not in ("created", "started"):
            return r
        seen.append((r.json()["task_type"], r.json()["stage"]))
        time.sleep(0.5)
    raise TimeoutError(f"task {task_id} did not end; states seen: {seen[-5:]}")


def check_ndvi_tif(data: bytes) -> None:
    expected, inside, transform = independent_ndvi(TRIANGLE)
    expected = expected.astype(np.float32)
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.driver == "GTiff" and ds.count == 1 and ds.dtypes == ("float32",)
        assert ds.nodata == -9999.0 and ds.crs.to_epsg() == 32618
        assert ds.transform == transform and ds.shape == expected.shape
        assert ds.profile["blockxsize"] == 512 and ds.profile["compress"] == "deflate"
        out = ds.read(1)
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-6)
    assert (out[~inside] == -9999.0).all()
    assert inside.sum() > 1000


class CallbackListener:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def run_bandmath(base: str, key: str, db_url: str, callback_url: str | None = None) -> str:
    with httpx.Client(timeout=30) as client:
        body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}}
        if callback_url:
            body["callback_url"] = callback_url
        r = client.post(f"{base}/api", params={"api_key": key}, json=body)
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        # A scene that does not exist is accepted and fails at scene_lookup.
        missing = client.post(f"{base}/api", headers={"x-api-key": key},
                              json={"type": "bandmath", "params": {"view_id": "S2/18/S/VG/2021/1/1/0", "bm_type": "NDVI"}}).json()["task_id"]
        done = wait_for_end(client, base, key, task_id)
        assert done.status_code == 303, done.text
        url = done.headers["Location"]
        assert done.text == url and "S2A_tile_20200615_18SVG_0_NDVI.TIF" in url
        file = client.get(url)
        assert file.status_code == 200
        check_ndvi_tif(file.content)
        info = client.get(f"{base}/api/{task_id}", params={"api_key": key, "redirect": "false"}).json()
        assert info["task_type"] == "finished" and info["files"] == ["S2A_tile_20200615_18SVG_0_NDVI.TIF"]
        failed = wait_for_end(client, base, key, missing).json()
        assert failed == {"task_type": "failed", "status": "failed", "stage": "scene_lookup",
                          "error": "Scene with given ID does not exist", "task_id": missing}
        other_key, _ = create_api_key("intruder", url=db_url)
        assert client.get(f"{base}/api/{task_id}", params={"api_key": other_key}).status_code == 404
        return task_id


def cancel_a_task(base: str, key: str) -> None:
    """DELETE right after POST: the run is cancelled before it finishes and GET says so."""
    with httpx.Client(timeout=30) as client:
        body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}}
        task_id = client.post(f"{base}/api", params={"api_key": key}, json=body).json()["task_id"]
        r = client.delete(f"{base}/api/{task_id}", params={"api_key": key})
        assert r.status_code == 200 and r.json()["task_type"] == "cancelled", r.text
        end = wait_for_end(client, base, key, task_id)
        assert end.status_code == 200 and end.json()["task_type"] == "cancelled", end.text
        assert end.json()["error"] == "The task was cancelled"
        assert client.delete(f"{base}/api/{task_id}", params={"api_key": key}).status_code in (200, 409)


def test_bandmath_end_to_end_local_store(prefect_server, tmp_path):
    # The operator allows loopback callbacks here (they are refused by default: see test_gateway).
    service, base, key = start_stack(tmp_path, prefect_server, {"EOTASKS_CALLBACK_ALLOW_PRIVATE": "true"})
    listener = CallbackListener()
    try:
        task_id = run_bandmath(base, key, f"sqlite:///{tmp_path / 'eotasks.db'}", callback_url=listener.url)
        assert list((tmp_path / "results").glob("*/S2A_tile_20200615_18SVG_0_NDVI.TIF"))
        deadline = time.monotonic() + 30
        while not listener.received and time.monotonic() < deadline:
            time.sleep(0.2)
        [answer] = listener.received
        assert answer["task_id"] == task_id and answer["task_type"] == "finished"
        assert check_ndvi_tif(httpx.get(answer["result_url"]).content) is None  # the callback's URL works too
    finally:
        listener.close()
        service.stop()


def save_store_block(prefect_port: int, endpoint: str) -> str:
    """An operator's configuration: prefect-aws blocks saved on the Prefect server, no AWS_* env."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{prefect_port}/api"}):
        creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1",
                               aws_client_parameters=AwsClientParameters(endpoint_url=endpoint))
        S3Bucket(bucket_name="eotasks-results", bucket_folder="runs", credentials=creds).save("e2e-results", overwrite=True)
    return "e2e-results"


def test_bandmath_end_to_end_s3_store_from_a_prefect_block(prefect_server, moto_s3, tmp_path):
    block = save_store_block(prefect_server, moto_s3)
    service, base, key = start_stack(tmp_path, prefect_server, {"EOTASKS_STORE_BLOCK": block})
    try:
        run_bandmath(base, key, f"sqlite:///{tmp_path / 'eotasks.db'}")
        s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="eotasks-results").get("Contents", [])]
        assert any(k.startswith("runs/") and k.endswith("_NDVI.TIF") for k in keys), keys
        assert not (tmp_path / "results").exists()  # nothing went to the local folder
        cancel_a_task(base, key)
    finally:
        service.stop()
