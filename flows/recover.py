"""Recovery of a run that nothing is executing: resubmit it, or fail it with a sentence.

authentication-free: the run is Prefect's own, started by an automation (eotasks/recovery.py) when a
task-type run stayed PENDING with no process starting it (its worker died between the two), or
stopped sending heartbeats while RUNNING (its process or host died). Our tasks are idempotent, so a
resubmitted run simply runs again on whichever worker takes it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.states import Failed, Scheduled

from eotasks.settings import get_settings

RESUBMITTED = "Resubmitted"
STALE_STATE = {"not started": "PENDING", "no heartbeat": "RUNNING"}


def gave_up_message(times: int) -> str:
    return (f"The task was started {times + 1} times but the process running it stopped each time (a worker or machine "
            "went down); please submit it again")


@flow(name="recover", log_prints=True, timeout_seconds=120)
def recover(flow_run_id: str, reason: str) -> dict[str, Any]:
    logger = get_run_logger()
    run_id = UUID(flow_run_id.removeprefix("prefect.flow-run."))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        state = run.state.type.value if run.state else None
        if state != STALE_STATE.get(reason):
            logger.info("flow run %s is %s now: nothing to recover", run_id, state)
            return {"flow_run_id": str(run_id), "action": "none", "state": state}
        resubmitted = sum(1 for s in client.read_flow_run_states(run_id) if s.name == RESUBMITTED)
        if resubmitted < get_settings().max_resubmits:
            client.set_flow_run_state(run_id, Scheduled(name=RESUBMITTED, message=f"Resubmitted: {reason}"), force=True)
            logger.warning("flow run %s %s: resubmitted (%d of %d)", run_id, reason, resubmitted + 1, get_settings().max_resubmits)
            return {"flow_run_id": str(run_id), "action": "resubmitted", "times": resubmitted + 1}
        client.set_flow_run_state(run_id, Failed(message=gave_up_message(resubmitted)), force=True)
        enqueue_failure_callback(run.parameters or {}, gave_up_message(resubmitted))
        logger.error("flow run %s %s again after %d resubmissions: failed", run_id, reason, resubmitted)
        return {"flow_run_id": str(run_id), "action": "failed", "times": resubmitted}


def enqueue_failure_callback(parameters: dict[str, Any], message: str) -> None:
    """No engine runs the hooks of a run failed from outside: send its callback from here."""
    from eotasks import callbacks
    from eotasks.answers import ended_answer
    from eotasks.db import TaskRecord, session

    task_id = parameters.get("task_id")
    if not task_id:
        return
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is not None and record.callback_url:
        callbacks.enqueue(task_id, record.callback_url, ended_answer(task_id, "FAILED", message, "authentication"))
