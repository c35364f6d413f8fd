"""A task's progress and ending, recorded in our own database by whoever learns of it.

- The run itself, as it goes: ``started`` when its flow starts, the ``stage`` when each step starts
  (or fails), and its ending from the flow's final-state hooks (or the worker's, for a crash).
- The recovery flow, for a run it gives up on; the gateway, for a run it cancels (whose engine may
  never run again), or whose run Prefect no longer has.

The first ending recorded is the one that stays: an ended task never changes, so the gateway answers
it from this row alone, and the answer a client saw once is the answer it sees ever after (a task
cancelled while running is ``cancelled``, never ``failed`` in between).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CursorResult, or_, update
from sqlmodel import col

from eotasks.db import TaskRecord, session, utcnow

ENDED = ("finished", "failed", "cancelled")
_recorded: dict[str, str] = {}  # task id -> the stage this process last wrote (a batch step starts many times)


def record_stage(task_id: str, stage: str, url: str | None = None) -> None:
    """The run reached ``stage`` (it is running): nothing changes once the task has ended."""
    if _recorded.get(task_id) == stage:
        return
    if len(_recorded) > 10_000:
        _recorded.clear()
    _recorded[task_id] = stage
    with session(url) as s:
        status, current = col(TaskRecord.status), col(TaskRecord.stage)
        s.execute(
            update(TaskRecord)
            .where(
                col(TaskRecord.id) == task_id,
                or_(status.is_(None), status == "started"),
                or_(current.is_(None), current != stage, status.is_(None)),
            )
            .values(status="started", stage=stage, updated_at=utcnow())
        )
        s.commit()


def record_ending(
    task_id: str,
    status: str,
    *,
    error: str | None = None,
    stage: str | None = None,
    result: dict[str, Any] | None = None,
    url: str | None = None,
) -> bool:
    """Record how the task ended; False when an ending was recorded before (it stays)."""
    if status not in ENDED:
        raise ValueError(f"not an ending: {status}")
    now = utcnow()
    values: dict[str, Any] = {"status": status, "error": error, "result": result, "ended_at": now, "updated_at": now}
    if stage is not None:
        values["stage"] = stage
    with session(url) as s:
        now_status = col(TaskRecord.status)
        unended = or_(now_status.is_(None), now_status == "started")
        done: CursorResult[Any] = s.execute(  # type: ignore[assignment]
            update(TaskRecord).where(col(TaskRecord.id) == task_id, unended).values(**values)
        )
        s.commit()
        return bool(done.rowcount)


def ended(record: TaskRecord) -> bool:
    return record.status in ENDED


def changed_since(record: TaskRecord, since: dt.datetime) -> bool:
    updated = record.updated_at
    if updated.tzinfo is None:  # SQLite gives naive datetimes back
        updated = updated.replace(tzinfo=dt.UTC)
    return updated > since
