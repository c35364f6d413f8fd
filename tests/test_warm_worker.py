"""The warm worker on a real Prefect server, started the way an operator starts it:
``prefect work-pool create --type eotasks-warm`` and ``prefect worker start --type eotasks-warm``.

Proves the warm path (the flow's parent is the worker's forkserver; a marker only the preload sets is
visible inside the flow), and that Prefect's semantics hold: cancel kills the child and fires the
hook, a child that dies ends Crashed with its code and the next runs are fine, a run over its time
limit fails with a clear message, kill_infrastructure stops a child by its id.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from eotasks.launcher import Service, service_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
POOL = "warm-test"


class WarmPool:
    def __init__(self, root: Path, prefect_port: int) -> None:
        self.api = f"http://127.0.0.1:{prefect_port}/api"
        self.markers = root / "markers"
        self.markers.mkdir(parents=True)
        self.env = service_env(root, prefect_port, {"PREFECT_WORKER_ENABLE_CANCELLATION": "true"})
        self.service = Service(self.env, root / "logs")
        self.log = root / "logs" / "worker.log"
        self.client = httpx.Client(timeout=30)

    def start(self) -> None:
        created = subprocess.run(
            [sys.executable, "-m", "prefect", "work-pool", "create", POOL, "--type", "eotasks-warm"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        self.deploy()
        self.service.start(
            "worker",
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                POOL,
                "--type",
                "eotasks-warm",
                "--limit",
                "4",
                "--name",
                "warm-a",
                "--install-policy",
                "never",
            ],
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if m := re.search(r"warm forkserver ready \(pid (\d+)\)", self.log.read_text() if self.log.exists() else ""):
                self.forkserver_pid = int(m.group(1))
                return
            time.sleep(0.5)
        raise TimeoutError(f"the warm worker did not start: {self.log.read_text()}")

    def deploy(self) -> None:
        from prefect.deployments.runner import EntrypointType
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.noop import noop
        from tests.warm_probes import late_import, overrun, sleeper, suicide

        with temporary_settings(updates={PREFECT_API_URL: self.api}):
            for f in (noop, sleeper, suicide, overrun, late_import):
                f.to_deployment(
                    name="warm", entrypoint_type=EntrypointType.MODULE_PATH, job_variables={"working_dir": str(REPO)}
                ).apply(work_pool_name=POOL)

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        """As Prefect's own client does: retry a 503 (SQLite's "database is locked" under writes)."""
        for attempt in range(10):
            r = self.client.request(method, f"{self.api}{path}", **kwargs)
            if r.status_code != 503:
                return r
            time.sleep(min(0.1 * 2**attempt, 2))
        return r

    def create(self, flow_name: str, **parameters) -> str:
        dep = self.call("GET", f"/deployments/name/{flow_name}/warm").json()["id"]
        if flow_name != "noop":
            parameters["marker_dir"] = str(self.markers)
        r = self.call("POST", f"/deployments/{dep}/create_flow_run", json={"parameters": parameters})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def run(self, run_id: str) -> dict:
        return self.call("GET", f"/flow_runs/{run_id}").json()

    def wait(self, run_id: str, until=("COMPLETED", "FAILED", "CRASHED", "CANCELLED"), timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["state"]["type"] in until:
                return run
            time.sleep(0.1)
        raise TimeoutError(f"{run_id} is still {run['state']['type']}")

    def logs(self, run_id: str) -> list[str]:
        return [
            entry["message"]
            for entry in self.call(
                "POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
            ).json()
        ]

    def stop(self) -> None:
        self.client.close()
        self.service.stop(grace=10)


@pytest.fixture(scope="module")
def warm(prefect_server, tmp_path_factory):
    pool = WarmPool(tmp_path_factory.mktemp("warm"), prefect_server)
    try:
        pool.start()
        yield pool
    finally:
        pool.stop()


def _execution(pool: WarmPool, run_id: str) -> dict[str, str]:
    deadline = time.monotonic() + 10  # logs are shipped in batches
    while time.monotonic() < deadline:
        for line in pool.logs(run_id):
            if line.startswith("execution: "):
                return dict(kv.split("=", 1) for kv in line.removeprefix("execution: ").split())
        time.sleep(0.3)
    raise AssertionError(f"no execution line in {pool.logs(run_id)}")


def test_runs_start_in_a_child_of_the_preloaded_forkserver(warm):
    for _ in range(3):
        run_id = warm.create("noop")
        run = warm.wait(run_id)
        assert run["state"]["type"] == "COMPLETED", run["state"]
        seen = _execution(warm, run_id)
        assert int(seen["ppid"]) == warm.forkserver_pid  # forked by the forkserver, not spawned by the worker
        forkserver, threads = seen["warm"].split(":")
        assert int(forkserver) == warm.forkserver_pid
        assert threads == "1"  # nothing had started a thread in the forkserver before it forked
        assert seen["preloaded"] == "True"  # rasterio and our preload were imported before the fork
        assert run["infrastructure_pid"] == f"{socket.gethostname()}:{seen['pid']}"
        assert any("Finished in state Completed" in line for line in warm.logs(run_id))
        deadline = time.monotonic() + 10  # one child per run, gone after it (it flushes logs and events first)
        while Path(f"/proc/{seen['pid']}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{seen['pid']}").exists()
    # A run of a preloaded flow imports nothing more (the probes in tests/ are not preloaded: other
    # tests' runs of them may be reported, and only them).
    late = [line.split(": ", 1)[1] for line in warm.log.read_text().splitlines() if "had not preloaded" in line]
    assert all(m == "tests" or m.startswith("tests.") for names in late for m in names.split(", ")), late


def test_a_run_that_imports_what_was_not_preloaded_says_so_in_the_worker_log(warm):
    run = warm.wait(warm.create("probe-late-import"))
    assert run["state"]["type"] == "COMPLETED", run["state"]
    deadline = time.monotonic() + 10
    while "warm_late_module" not in warm.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    [line] = [line for line in warm.log.read_text().splitlines() if "had not preloaded" in line and "warm_late_module" in line]
    assert "tests.warm_late_module" in line.split("had not preloaded: ")[1].split(", "), line


def test_cancel_kills_the_child_and_fires_the_hook(warm):
    run_id = warm.create("probe-sleeper", seconds=120)
    warm.wait(run_id, until=("RUNNING",))
    pid_file = warm.markers / f"pid-{run_id}"
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}").exists()
    r = warm.call("POST", f"/flow_runs/{run_id}/set_state", json={"state": {"type": "CANCELLING", "name": "Cancelling"}})
    assert r.status_code in (200, 201), r.text
    run = warm.wait(run_id, until=("CANCELLED", "CRASHED", "FAILED", "COMPLETED"), timeout=60)
    assert run["state"]["type"] == "CANCELLED", run["state"]
    deadline = time.monotonic() + 20
    while not (warm.markers / f"cancelled-{run_id}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    # Prefect runs on_cancellation hooks as the run enters Cancelling.
    assert (warm.markers / f"cancelled-{run_id}").read_text().startswith(("CANCELLING", "CANCELLED"))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize(("how", "code"), [("sigkill", "-9"), ("exit3", "3")])
def test_a_child_that_dies_ends_crashed_with_its_code(warm, how, code):
    run_id = warm.create("probe-suicide", how=how)
    run = warm.wait(run_id)
    assert run["state"]["type"] == "CRASHED", run["state"]
    assert f"status code: {code}" in run["state"]["message"] or f"status code {code}" in run["state"]["message"], run["state"][
        "message"
    ]
    deadline = time.monotonic() + 20
    while not (warm.markers / f"crashed-{run_id}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (warm.markers / f"crashed-{run_id}").read_text().startswith("CRASHED")
    # The worker is unharmed: the next run completes, still warm.
    after = warm.create("noop")
    assert warm.wait(after)["state"]["type"] == "COMPLETED"
    assert int(_execution(warm, after)["ppid"]) == warm.forkserver_pid


def test_a_run_over_its_time_limit_fails_with_a_clear_message(warm):
    run_id = warm.create("probe-overrun")
    run = warm.wait(run_id, timeout=60)
    assert run["state"]["type"] == "FAILED", run["state"]
    assert run["state"]["name"] == "TimedOut"
    assert run["state"]["message"] == "Flow run exceeded timeout of 2.0 second(s)"
    from eotasks.answers import failure_message

    assert (
        failure_message("FAILED", run["state"]["message"])
        == "The task did not finish within its time limit of 2.0 s and was stopped"
    )


def test_kill_infrastructure_stops_a_child_by_its_id(tmp_path):
    from prefect.exceptions import InfrastructureNotAvailable, InfrastructureNotFound
    from prefect.workers.process import ProcessJobConfiguration

    from eotasks.warm.worker import WarmProcessWorker

    worker = WarmProcessWorker(work_pool_name="unused")
    config = ProcessJobConfiguration(command=None)
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    )
    try:
        time.sleep(0.5)
        started = time.monotonic()
        anyio.run(lambda: worker.kill_infrastructure(f"{socket.gethostname()}:{child.pid}", config, grace_seconds=1))
        assert child.wait(timeout=10) == -9  # SIGTERM ignored, so SIGKILL after the grace period
        assert time.monotonic() - started >= 1
    finally:
        child.kill()
    with pytest.raises(InfrastructureNotFound):
        anyio.run(lambda: worker.kill_infrastructure(f"{socket.gethostname()}:{child.pid}", config, grace_seconds=1))
    with pytest.raises(InfrastructureNotAvailable):
        anyio.run(lambda: worker.kill_infrastructure("another-host:1", config, grace_seconds=1))
