"""Before a run whose heartbeats stopped is resubmitted, its first process is stopped when it is
still alive on this machine, and only if it really is that run's (a pid can be reused)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time

from flows.recover import process_start, stop_first_process


def sleeper() -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"]
    )
    time.sleep(0.3)
    return proc


def test_the_first_process_of_a_stalled_run_is_stopped():
    proc = sleeper()
    try:
        started = process_start(proc.pid)
        assert started is not None and abs((dt.datetime.now(dt.UTC) - started).total_seconds()) < 10
        said = stop_first_process(f"{socket.gethostname()}:{proc.pid}", started + dt.timedelta(seconds=1), grace_s=1.0)
        assert "stopped" in said
        assert proc.wait(timeout=10) == -9  # it ignored SIGTERM: SIGKILL after the grace period
    finally:
        proc.kill()


def test_a_reused_pid_another_host_or_no_pid_is_left_alone():
    proc = sleeper()
    try:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        assert "another process" in stop_first_process(f"{socket.gethostname()}:{proc.pid}", long_ago)
        assert "out of this worker's reach" in stop_first_process(f"elsewhere-{socket.gethostname()}:{proc.pid}", long_ago)
        assert "never recorded" in stop_first_process(None, long_ago)
        assert proc.poll() is None  # still running: it was not the run's
    finally:
        proc.kill()
        proc.wait()
    assert "gone" in stop_first_process(f"{socket.gethostname()}:{proc.pid}", dt.datetime.now(dt.UTC))
