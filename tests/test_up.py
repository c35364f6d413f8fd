"""``eotasks up`` as ``make up`` runs it: refusing a busy port, and leaving no process when stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from eotasks.launcher import free_port

pytestmark = pytest.mark.e2e


def service_processes(marker: str) -> list[int]:
    """Every live process started with ``marker`` (EOTASKS_DATA_DIR=<this test's folder>) in its
    environment: the service's own, and everything they started (forked children included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


def up_env(data_dir: Path, port: int, prefect_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOTASKS_", "PREFECT_"))}
    env.update(
        {
            "EOTASKS_DATA_DIR": str(data_dir),
            "EOTASKS_PORT": str(port),
            "EOTASKS_PREFECT_PORT": str(prefect_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return env


@pytest.mark.parametrize("which", ["EOTASKS_PORT", "EOTASKS_PREFECT_PORT"])
def test_a_busy_port_is_refused_naming_the_variable(tmp_path, which):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = taken.getsockname()[1]
        port, prefect_port = (busy, free_port()) if which == "EOTASKS_PORT" else (free_port(), busy)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "eotasks.cli", "up"],
            env=up_env(tmp_path / "data", port, prefect_port),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr[-2000:]
        assert f"port {busy} on 127.0.0.1 is already in use" in done.stderr and f"{which}=" in done.stderr, done.stderr[-2000:]
        assert "eotasks is up" not in done.stdout and time.monotonic() - started < 60
        assert not service_processes(f"EOTASKS_DATA_DIR={tmp_path / 'data'}")  # nothing was started
    finally:
        taken.close()


def test_a_stopped_service_leaves_no_process(tmp_path):
    """SIGINT to the whole process group, as Ctrl-C under ``make up`` sends it, then SIGKILL 8 s
    later (the service still stopping), with a year of statistics in flight: every process of the
    service (Prefect server, worker, forkserver, its resource tracker, flow-run children, gateway)
    is gone, checked by pid."""
    data_dir = tmp_path / "data"
    marker = f"EOTASKS_DATA_DIR={data_dir}"
    port, prefect_port = free_port(), free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "eotasks.cli", "up"],
        env=up_env(data_dir, port, prefect_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert up.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.5)
        key = re.search(r"apk\.[0-9a-f]{64}", "".join(lines)).group(0)
        base = f"http://127.0.0.1:{port}"
        field = {
            "type": "Polygon",
            "coordinates": [
                [[-75.4285, 37.8189], [-75.4285, 37.8223], [-75.4544, 37.8222], [-75.4544, 37.8188], [-75.4285, 37.8189]]
            ],
        }
        busy = httpx.post(
            f"{base}/api",
            params={"api_key": key},
            timeout=30,
            json={
                "type": "mt_stats",
                "params": {
                    "date_start": "2023-01-01",
                    "date_end": "2023-12-31",
                    "bm_type": ["NDVI", "EVI", "NDWI"],
                    "geometry": field,
                    "percentiles": [5, 50, 95],
                },
            },
        )
        assert busy.status_code == 202, busy.text
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/api/{busy.json()['task_id']}", params={"api_key": key}).json().get("task_type") == "created":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        before = service_processes(marker)
        assert len(before) >= 5, before  # server, worker, forkserver, a flow-run child, gateway (and their supervisors)
        os.killpg(up.pid, signal.SIGINT)
        time.sleep(8)
        try:
            os.killpg(up.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        up.wait(timeout=30)
        deadline = time.monotonic() + 20
        while service_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = service_processes(marker)
        alive = [pid for pid in before if Path(f"/proc/{pid}").exists() and pid in left]
        assert not left and not alive, {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in left}
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        for pid in service_processes(marker):
            os.kill(pid, signal.SIGKILL)


REPO = Path(__file__).resolve().parent.parent


def test_make_up_in_a_clone_with_no_shared_folder_serves_the_readme_request(tmp_path):
    """The two commands on a clone from anywhere: ``make up`` in a fresh clone with no ``../shared``
    beside it ingests the package's sample, prints the key it keeps in ``.eotasks/demo.key``, and
    the README's request on that key and port gives a real GeoTIFF."""
    import rasterio
    from rasterio.io import MemoryFile

    from eotasks.sample import SAMPLE_POLYGON, SAMPLE_VIEW_ID

    clone = tmp_path / "eotasks"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    assert not (tmp_path / "shared").exists()
    data_dir = clone / ".eotasks"
    port, prefect_port = free_port(), free_port()
    env = up_env(data_dir, port, prefect_port)
    up = subprocess.Popen(
        ["make", "up"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 420
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert up.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.5)
        printed = "".join(lines)
        assert "the package's crop of the real Sentinel-2 sample" in printed, printed[-3000:]
        key = (data_dir / "demo.key").read_text().strip()
        assert key in printed
        base = f"http://127.0.0.1:{port}"
        body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": SAMPLE_POLYGON}}
        with httpx.Client(timeout=90) as client:
            r = client.post(f"{base}/api", params={"api_key": key}, json=body)
            assert r.status_code == 202, r.text
            task_id = r.json()["task_id"]
            for _ in range(10):
                r = client.get(f"{base}/api/{task_id}", params={"api_key": key, "wait": 30})
                if r.status_code != 200:
                    break
            assert r.status_code == 303, r.text
            tif = client.get(r.headers["location"])
        assert tif.status_code == 200
        with MemoryFile(tif.content) as mem, mem.open() as ds:
            assert ds.crs == rasterio.crs.CRS.from_epsg(32618) and ds.nodata == -9999.0
            ndvi = ds.read(1, masked=True)
        assert ndvi.count() > 1000 and ndvi.min() >= -1 and ndvi.max() <= 1
    finally:
        try:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(up.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while service_processes(f"EOTASKS_DATA_DIR={data_dir}") and time.monotonic() < deadline:
            time.sleep(0.5)
    assert not service_processes(f"EOTASKS_DATA_DIR={data_dir}")


def test_the_demo_key_is_kept_while_it_is_valid(sqlite_url, tmp_path, monkeypatch):
    from eotasks.cli import demo_key
    from eotasks.db import revoke_api_key
    from eotasks.settings import reset_settings

    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    try:
        path = tmp_path / "demo.key"
        first = demo_key(path, "demo")
        assert demo_key(path, "demo") == first == path.read_text().strip()
        assert path.stat().st_mode & 0o077 == 0  # the key file is the owner's alone
        revoke_api_key(first)
        second = demo_key(path, "demo")
        assert second != first and path.read_text().strip() == second
    finally:
        monkeypatch.delenv("EOTASKS_DATABASE_URL")
        reset_settings()
