"""What GET says about a task: SPEC §1's answers, from our database once the task has ended.

An ended task (finished, failed, cancelled) is answered from its row alone: no call to Prefect, and
the answer never changes. A task that has not ended is looked up in Prefect (its state, and its
stage unless the run has recorded one); when Prefect says it ended (before the run's own hook wrote
it down, or for a run whose engine never ran again), the ending is recorded here, once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from prefect.exceptions import ObjectNotFound
from starlette.concurrency import run_in_threadpool

from eotasks.answers import TASK_TYPE_BY_STATE, failed_answer, failure_message
from eotasks.db import TaskRecord, utcnow
from eotasks.models import TaskPending
from eotasks.outcomes import ENDED, record_ending
from gateway import records
from gateway.auth import Caller
from gateway.records import STALE_RESERVATION_S
from gateway.runs import PrefectRuns

log = logging.getLogger("eotasks.gateway")
LOST = "The task's run no longer exists on the orchestrator (it was removed); please submit it again"
NOT_CREATED = "The task could not be created (the service was unavailable); please submit it again"
ENDED_TYPES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Current:
    """A task as a client sees it now."""

    task_type: str  # created, started, finished, failed, cancelled
    stage: str
    failure: dict[str, Any] | None = None  # failed or cancelled: the answer itself
    files: tuple[str, ...] = ()  # finished downloads: their store keys
    answer_key: str | None = None  # finished statistics: the key of the JSON answer

    def differs(self, other: Current) -> bool:
        return (self.task_type, self.stage) != (other.task_type, other.stage)


def from_record(record: TaskRecord) -> Current:
    """An ended task's answer, from its row alone."""
    stage = record.stage or "authentication"
    if record.status == "finished":
        result = record.result or {}
        return Current("finished", stage, files=tuple(result.get("files") or ()), answer_key=result.get("answer"))
    return Current(
        record.status or "failed", stage, failure=failed_answer(record.id, record.status or "failed", record.error, stage)
    )


async def current(record: TaskRecord, runs: PrefectRuns) -> Current:
    if record.status in ENDED:
        return from_record(record)
    if record.flow_run_id is None:  # reserved a moment ago; its run is being created (or never was)
        created = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=dt.UTC)
        if utcnow() - created > dt.timedelta(seconds=STALE_RESERVATION_S):
            return await _record(record, "failed", error=NOT_CREATED, stage="authentication")
        return Current("created", "authentication")
    try:
        run = await runs.status(record.flow_run_id, with_result=False, with_stage=not record.stage)
    except ObjectNotFound:
        return await _record(record, "failed", error=LOST, stage=record.stage or "authentication")
    task_type = TASK_TYPE_BY_STATE.get(run.state_type, "started")
    stage = record.stage or run.stage
    if run.state_type not in ENDED_TYPES:
        if task_type == "cancelled":  # Cancelling: already the task's answer (SPEC §7)
            return await _record(record, "cancelled", error=failure_message("CANCELLED", None), stage=stage)
        return Current(task_type if task_type in ("created", "started") else "started", stage)
    if run.state_type == "COMPLETED":
        done = await runs.status(record.flow_run_id, with_result=True, with_stage=False)
        result = done.result if isinstance(done.result, dict) else {}
        files = result.get("files")
        return await _record(
            record, "finished", result={"files": files} if files else {"answer": f"{record.id}/mt_stats.json"}, stage=stage
        )
    if not record.stage:  # the failed step, from the run's task runs
        stage = (await runs.status(record.flow_run_id, with_result=False)).stage
    return await _record(record, task_type, error=failure_message(run.state_type, run.message), stage=stage)


async def _record(record: TaskRecord, status: str, **ending: Any) -> Current:
    """Record an ending learned here (the first recorded stays), and answer with the one recorded."""
    await run_in_threadpool(record_ending, record.id, status, **ending)
    fresh = await records.owned_task(record.id, record.api_key_id)
    return (
        from_record(fresh)
        if fresh.status in ENDED
        else from_record(TaskRecord(**{**record.model_dump(), "status": status, **ending}))
    )


def pending_body(record: TaskRecord, key: Caller, now: Current) -> dict[str, Any]:
    return TaskPending(
        task_type=now.task_type,
        status=now.task_type,
        stage=now.stage,
        reference=record.reference,
        token=key.masked,
        task_id=record.id,
    ).model_dump()


async def wait_for_change(record: TaskRecord, runs: PrefectRuns, first: Current, seconds: float) -> tuple[TaskRecord, Current]:
    """Return at the first change of the task's status or stage, or after ``seconds``: our row is
    read every 0.1 s (the run writes its stage and ending there), Prefect asked every second (a run
    that has not written anything yet, or whose process died)."""
    deadline = time.monotonic() + seconds
    last_prefect = time.monotonic()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return record, first
        await asyncio.sleep(min(0.1, left))
        fresh = await records.owned_task(record.id, record.api_key_id)
        ask_prefect = time.monotonic() - last_prefect >= 1.0
        if (
            fresh.status in ENDED
            or fresh.stage != record.stage
            or fresh.status != record.status
            or fresh.flow_run_id != record.flow_run_id
            or ask_prefect
        ):
            if ask_prefect:
                last_prefect = time.monotonic()
            now = await current(fresh, runs)
            if now.differs(first):
                return fresh, now
            record = fresh
