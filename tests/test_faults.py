"""Faults caused for real: the process that executes runs is killed while tasks are pending and
running, and every task still finishes (supervision restarts it; Prefect automations resubmit the
runs it left PENDING or RUNNING without a heartbeat)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.launcher import Service, free_port, service_env
from tests.conftest import SAMPLE_VIEW_ID
from tests.stack import DEPLOYMENTS, Stack
from tests.test_e2e import GEOMETRY

pytestmark = pytest.mark.e2e

RECOVERY = {
    "EOTASKS_STALE_PENDING_S": "15",
    "EOTASKS_STALE_HEARTBEAT_S": "45",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "EOTASKS_SERVE_LIMIT": "2",
}
BOUND_S = 240  # every task ends within this after the kill (measured: about 100 s)


@pytest.fixture
def own_server(tmp_path):
    """A Prefect server of its own: the recovery automations must not act on other tests' runs."""
    port = free_port()
    (tmp_path / "server" / "prefect").mkdir(parents=True)
    service = Service(service_env(tmp_path / "server", port), tmp_path / "server-logs")
    try:
        service.start_prefect_server(port, timeout=180)
        yield port
    finally:
        service.stop()


def _states(api: str) -> dict[str, list[str]]:
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}).json()
    return {
        r["id"]: [s["name"] for s in httpx.get(f"{api}/flow_run_states/", params={"flow_run_id": r["id"]}).json()]
        for r in runs
        if "eotasks" in (r.get("tags") or [])
    }


def test_killing_the_executor_loses_no_task(own_server, tmp_path):
    stack = Stack(tmp_path / "stack", own_server, RECOVERY, deployments=[*DEPLOYMENTS, "recover/eotasks"])
    try:
        generate_demo(tmp_path / "demo", url=stack.db_url)
        stack.supervise()
        field = demo_fields()[0]["geometry"]
        tasks = [
            stack.submit(
                "mt_stats",
                {
                    "date_start": "2023-01-01",
                    "date_end": "2023-12-31",
                    "bm_type": ["NDVI", "EVI"],
                    "geometry": field,
                    "sensors": ["sentinel2l2a", "landsat8"],
                },
            )
            for _ in range(3)
        ]
        tasks += [
            stack.submit("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}) for _ in range(5)
        ]
        # Kill the worker, its forkserver and every flow-run child (one process group) once runs are going.
        # One listing a poll, not one GET per task: the key's rate limit (120 a minute) holds for tests too.
        deadline, kinds = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            r = stack.client.get(f"{stack.base}/api", params={"api_key": stack.key, "limit": 50})
            assert r.status_code in (200, 503), r.text
            if r.status_code == 200:
                kinds = [t["task_type"] for t in r.json()["tasks"] if t["task_id"] in tasks]
                if "started" in kinds:
                    break
            time.sleep(0.5)
        assert "started" in kinds, kinds
        [worker] = [p for name, p in stack.service.procs if name == "serve"]
        os.killpg(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        deadline = killed_at + BOUND_S  # one deadline for all the tasks, not a fresh one each
        answers = {t: stack.wait(t, timeout=max(1.0, deadline - time.monotonic())) for t in tasks}
        elapsed = time.monotonic() - killed_at
        assert elapsed < BOUND_S, elapsed
        bodies = {t: (r.status_code, r.json() if r.status_code == 200 else None) for t, r in answers.items()}
        # Finished: a 303 to the file (bandmath), or the statistics themselves (mt_stats).
        assert all(code == 303 or (code == 200 and "result" in body) for code, body in bodies.values()), bodies
        print(f"all {len(tasks)} tasks finished {elapsed:.0f} s after the kill")
        # The kill really stranded runs, and the automations brought them back.
        states = _states(stack.service.env["PREFECT_API_URL"])
        assert any("Resubmitted" in names for names in states.values()), states
        [restarted] = [p for name, p in stack.service.procs if name == "serve"]
        assert restarted.pid != worker.pid and restarted.poll() is None
    finally:
        stack.stop()
