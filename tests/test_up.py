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
