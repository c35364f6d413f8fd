"""Helpers for end-to-end tests: a service stack (serve + gateway) on a shared Prefect server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx

from eotasks.catalog.ingest import ingest_folder
from eotasks.db import create_api_key, init_db
from eotasks.launcher import Service, free_port, service_env
from tests.conftest import CROP_DIR, SAMPLE_VIEW_ID

DEPLOYMENTS = ["bandmath/eotasks", "lbe/eotasks", "jpeg/eotasks", "mt_stats/eotasks"]


class Stack:
    def __init__(self, root: Path, prefect_port: int, extra: dict[str, str], deployments: list[str] = DEPLOYMENTS):
        self.root = root
        self.db_url = f"sqlite:///{root / 'eotasks.db'}"
        gateway_port = free_port()
        init_db(self.db_url)
        ingest_folder(CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A", url=self.db_url)
        self.key, _ = create_api_key("e2e", url=self.db_url)
        self.base = f"http://127.0.0.1:{gateway_port}"
        self.service = Service(service_env(root, prefect_port, {"EOTASKS_PORT": str(gateway_port), **extra}), root / "logs")
        self.client = httpx.Client(timeout=30)
        try:
            self.service.start_serve(deployments)
            self.service.start_gateway("127.0.0.1", gateway_port)
        except Exception:
            self.service.stop()
            raise

    def supervise(self) -> None:
        """Restart any process of the stack that dies, as `eotasks up` does (in a thread)."""
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(
            target=self.service.supervise, kwargs={"log": print, "until": self._stopping.is_set}, daemon=True
        )
        self._supervisor.start()

    def stop(self) -> None:
        if getattr(self, "_supervisor", None) is not None:
            self._stopping.set()
            self._supervisor.join(timeout=10)
        self.client.close()
        self.service.stop()

    def submit(self, task_type: str, params: dict, **top) -> str:
        r = self.client.post(f"{self.base}/api", params={"api_key": self.key}, json={"type": task_type, "params": params, **top})
        assert r.status_code == 202, r.text
        return r.json()["task_id"]

    def wait(self, task_id: str, timeout: float = 180, key: str | None = None) -> httpx.Response:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            # A long poll (SPEC §7): one request per change of the task, not one per half second.
            r = self.client.get(f"{self.base}/api/{task_id}", params={"api_key": key or self.key, "wait": 10})
            if r.status_code in (429, 503):  # rate limited or busy: a client waits as told, as ours do
                seen.append((r.status_code, r.text[:200]))
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code == 303 or r.json().get("task_type") not in ("created", "started"):
                return r
            seen.append((r.json()["task_type"], r.json()["stage"]))
        raise TimeoutError(f"task {task_id} did not end; states seen: {seen[-5:]}")

    def get(self, path: str, key: str | None = None, **params: str) -> httpx.Response:
        """GET as a client does: after a 429 or 503, again when Retry-After says."""
        for _ in range(30):
            r = self.client.get(f"{self.base}{path}", params={"api_key": key or self.key, **params})
            if r.status_code not in (429, 503):
                return r
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return r

    def result(self, task_id: str) -> tuple[str, bytes]:
        """Wait, follow the 303, return (file name, bytes)."""
        r = self.wait(task_id)
        assert r.status_code == 303, r.text
        assert r.text == r.headers["Location"]
        file = self.client.get(r.headers["Location"])
        assert file.status_code == 200
        info = self.get(f"/api/{task_id}", redirect="false").json()
        assert info["task_type"] == "finished"
        [name] = info["files"]
        return name, file.content


class CallbackListener:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
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


def save_store_block(prefect_port: int, endpoint: str) -> str:
    """An operator's configuration: prefect-aws blocks saved on the Prefect server, no AWS_* env."""
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{prefect_port}/api"}):
        creds = AwsCredentials(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
        )
        bucket = S3Bucket(bucket_name="eotasks-results", bucket_folder="runs", credentials=creds)
        for attempt in range(4):
            try:
                bucket.save("e2e-results", overwrite=True)
                break
            except PrefectHTTPStatusError as exc:
                # A busy SQLite server answers 503 while other runs write; Prefect's client has
                # retried it already. An operator runs the command again, and so does this.
                if exc.response.status_code != 503 or attempt == 3:
                    raise
                time.sleep(1)
    return "e2e-results"


class CountingProxy:
    """A loopback HTTP proxy in front of an S3 endpoint that counts the response bytes of GETs.

    GDAL is pointed at it as its S3 endpoint, so the test sees exactly what a scene read costs."""

    def __init__(self, upstream: str) -> None:
        import http.client
        from http.server import ThreadingHTTPServer
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        self.bytes_by_path: dict[str, int] = {}
        counts = self.bytes_by_path
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                headers["Host"] = target.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if self.command == "GET":
                    with lock:
                        key = self.path.split("?")[0]
                        counts[key] = counts.get(key, 0) + len(data)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def upload_scene(s3, bucket: str, prefix: str, assets: dict) -> dict:
    """Upload a scene's band files; the same assets with s3:// hrefs."""
    out = {}
    for band, spec in assets.items():
        key = f"{prefix}/{Path(spec['href']).name}"
        s3.upload_file(spec["href"], bucket, key)
        out[band] = {**spec, "href": f"s3://{bucket}/{key}"}
    return out
