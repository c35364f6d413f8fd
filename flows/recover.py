"""Recovery of a run that nothing is executing: resubmit it, or fail it with a sentence.

authentication-free: the run is Prefect's own, started by an automation (eotasks/recovery.py) when a
task-type run stayed PENDING with no process starting it (its worker died between the two), or
stopped sending heartbeats while RUNNING (its process or host died). Our tasks are idempotent, so a
resubmitted run simply runs again on whichever worker takes it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.states import Failed, Scheduled

from eotasks.settings import get_settings

RESUBMITTED = "Resubmitted"
STALE_STATE = {"not started": "PENDING", "no heartbeat": "RUNNING"}


def gave_up_message(times: int) -> str:
    return (
        f"The task was started {times + 1} times but the process running it stopped each time (a worker or machine "
        "went down); please submit it again"
    )


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
        if reason == "no heartbeat":
            # A run whose heartbeats stopped may still have a process (a stalled host, a network
            # split): it is stopped first when it is within reach, so two never run at once here.
            logger.info("flow run %s: its first process %s", run_id, stop_first_process(run.infrastructure_pid, run.start_time))
        if resubmitted < get_settings().max_resubmits:
            client.set_flow_run_state(run_id, Scheduled(name=RESUBMITTED, message=f"Resubmitted: {reason}"), force=True)
            logger.warning(
                "flow run %s %s: resubmitted (%d of %d)", run_id, reason, resubmitted + 1, get_settings().max_resubmits
            )
            return {"flow_run_id": str(run_id), "action": "resubmitted", "times": resubmitted + 1}
        client.set_flow_run_state(run_id, Failed(message=gave_up_message(resubmitted)), force=True)
        enqueue_failure_callback(run.parameters or {}, gave_up_message(resubmitted))
        logger.error("flow run %s %s again after %d resubmissions: failed", run_id, reason, resubmitted)
        return {"flow_run_id": str(run_id), "action": "failed", "times": resubmitted}


def process_start(pid: int) -> dt.datetime | None:
    """When a process of this machine started (from /proc), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    ticks = int(fields[19])  # field 22 of stat: start time, in clock ticks after boot
    return dt.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), dt.UTC)


def stop_first_process(infrastructure_pid: str | None, run_started: dt.datetime | None, grace_s: float = 10.0) -> str:
    """Stop the process a run was started in, if it is still alive on this machine; what happened.

    The process is the run's only if it started within a minute of the run (a pid can be reused by
    another process since). One on another machine is out of reach; what it may still write goes to
    the result store under the same keys as the new run's, each file replaced whole (never mixed)."""
    if not infrastructure_pid:
        return "was never recorded"
    host, _, pid_text = infrastructure_pid.rpartition(":")
    if host and host != socket.gethostname():
        return f"is on {host}, out of this worker's reach"
    try:
        pid = int(pid_text)
    except ValueError:
        return f"is not a process id ({infrastructure_pid})"
    started = process_start(pid)
    if started is None:
        return f"(pid {pid}) is gone"
    if run_started is None or abs((started - run_started).total_seconds()) > 60:
        return f"(pid {pid}) is gone: that pid is another process now"
    from eotasks.warm.forkserver import kill_pid

    kill_pid(pid, grace_s)
    return f"(pid {pid}) was still alive: stopped"


def enqueue_failure_callback(parameters: dict[str, Any], message: str) -> None:
    """No engine runs the hooks of a run failed from outside: record its ending and send its
    callback from here, as the hooks would."""
    from eotasks import callbacks
    from eotasks.db import TaskRecord, session
    from eotasks.outcomes import record_ending
    from flows._common import callback_body

    task_id = parameters.get("task_id")
    if not task_id:
        return
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is None:
        return
    record_ending(task_id, "failed", error=message, stage=record.stage or "authentication")
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is not None and record.callback_url:
        callbacks.enqueue(task_id, record.callback_url, callback_body(record))
