"""The gateway's database access, all of it: tasks, idempotency reservations, croppers, openEO jobs.

Each function is a plain synchronous database call run in a worker thread (``threaded``), so a
route awaits it and the event loop never waits on the database.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from eotasks.db import CropperRecord, OpenEOJob, TaskRecord, session, utcnow
from eotasks.outcomes import ENDED
from eotasks.usage import take_quota
from gateway.errors import ApiError

P = ParamSpec("P")
R = TypeVar("R")
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# A reservation whose run was never linked to it after this long was abandoned (its gateway gave up
# or died between the two writes): an idempotent retry takes the key over instead of pointing at it.
STALE_RESERVATION_S = 30


def threaded(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_in_threadpool(fn, *args, **kwargs)

    return run


@threaded
def reserve(record: TaskRecord, daily_quota: int | None) -> bool:
    """Insert the task row, spending one of the key's tasks today in the same transaction; False
    when another task already holds its (key, Idempotency-Key) (nothing is spent then)."""
    with session() as s:
        if daily_quota is not None:
            refused = take_quota(s, record.api_key_id, daily_quota)
            if refused is not None:
                s.rollback()
                if record.idempotency_key is not None and _find_idempotent(record.api_key_id, record.idempotency_key):
                    return False  # a retry of a task that exists: the caller answers with it
                retry = {"Retry-After": str(refused.retry_after_s)}
                raise ApiError(429, refused.message, [("api_key", "daily quota used up")], retry)
        s.add(record)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            return False
    return True


def _find_idempotent(key_id: int, idem: str) -> TaskRecord | None:
    with session() as s:
        return s.exec(select(TaskRecord).where(TaskRecord.api_key_id == key_id, TaskRecord.idempotency_key == idem)).first()


find_idempotent = threaded(_find_idempotent)


@threaded
def release_if_abandoned(record: TaskRecord) -> bool:
    """Delete a reservation no run was ever linked to, once it is stale; True when it was."""
    created = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=dt.UTC)
    if record.flow_run_id is not None or utcnow() - created < dt.timedelta(seconds=STALE_RESERVATION_S):
        return False
    with session() as s:
        row = s.get(TaskRecord, record.id)
        if row is None or row.flow_run_id is not None:
            return row is None
        s.delete(row)
        s.commit()
    return True


@threaded
def link_run(task_id: str, flow_run_id: str) -> None:
    with session() as s:
        row = s.get(TaskRecord, task_id)
        if row is not None:
            row.flow_run_id = flow_run_id
            s.add(row)
            s.commit()


@threaded
def forget(task_id: str) -> None:
    """Remove a reservation whose run could not be created (it never existed for the client)."""
    with session() as s:
        record = s.get(TaskRecord, task_id)
        if record is not None and record.flow_run_id is None:
            s.delete(record)
            s.commit()


class EndedRows:
    """The rows of tasks that have ended, kept in memory: an ending is recorded once and never
    changes (eotasks.outcomes.record_ending), so a poll of a finished task needs no database read."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self.rows: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, task_id: str) -> TaskRecord | None:
        with self.lock:
            row = self.rows.get(task_id)
            if row is not None:
                self.rows.move_to_end(task_id)
            return row

    def keep(self, record: TaskRecord) -> None:
        if record.status not in ENDED:
            return
        with self.lock:
            self.rows[record.id] = record
            self.rows.move_to_end(record.id)
            while len(self.rows) > self.size:
                self.rows.popitem(last=False)


ENDED_ROWS = EndedRows()


def _owned(task_id: str, key_id: int) -> TaskRecord:
    """The key's task from the database (``owned_task`` looks in memory first)."""
    if not _UUID4.match(task_id):
        raise ApiError(404, "Task not found", [("task_id", "not a task id")])
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is not None:
        ENDED_ROWS.keep(record)
    if record is None or record.api_key_id != key_id:
        raise ApiError(404, "Task not found", [("task_id", "unknown")])
    return record


async def owned_task(task_id: str, key_id: int) -> TaskRecord:
    """The key's task; an ended one from memory without a thread hop."""
    record = ENDED_ROWS.get(task_id) if _UUID4.match(task_id) else None
    if record is not None and record.api_key_id == key_id:
        return record
    return await run_in_threadpool(_owned, task_id, key_id)


@threaded
def list_tasks(key_id: int, page: int, limit: int) -> tuple[list[TaskRecord], int]:
    with session() as s:
        found = s.exec(select(func.count()).select_from(TaskRecord).where(TaskRecord.api_key_id == key_id)).one()
        rows = s.exec(
            select(TaskRecord)
            .where(TaskRecord.api_key_id == key_id)
            .order_by(col(TaskRecord.created_at).desc())
            .offset((page - 1) * limit)
            .limit(limit)
        ).all()
        return list(rows), int(found)


@threaded
def cropper_exists(ref: str) -> bool:
    with session() as s:
        return s.get(CropperRecord, ref) is not None


@threaded
def save_cropper(ref: str, geometry: dict[str, Any]) -> None:
    with session() as s:
        if s.get(CropperRecord, ref) is None:
            s.add(CropperRecord(id=ref, geometry=geometry))
            s.commit()


# --- openEO batch jobs (SPEC §8) ------------------------------------------------------------------


@threaded
def create_job(job: OpenEOJob) -> OpenEOJob:
    with session() as s:
        s.add(job)
        s.commit()
        s.refresh(job)
    return job


@threaded
def owned_job(job_id: str, key_id: int) -> OpenEOJob | None:
    """The key's job, or None (another key's job does not exist for this one)."""
    with session() as s:
        job = s.get(OpenEOJob, job_id)
    return job if job is not None and job.api_key_id == key_id else None


@threaded
def list_jobs(key_id: int, limit: int) -> list[OpenEOJob]:
    with session() as s:
        query = select(OpenEOJob).where(OpenEOJob.api_key_id == key_id).order_by(col(OpenEOJob.created_at).desc()).limit(limit)
        return list(s.exec(query))


@threaded
def update_job(job_id: str, **changes: Any) -> OpenEOJob | None:
    with session() as s:
        job = s.get(OpenEOJob, job_id)
        if job is None:
            return None
        for name, value in changes.items():
            setattr(job, name, value)
        job.updated_at = utcnow()
        s.add(job)
        s.commit()
        s.refresh(job)
        return job


@threaded
def delete_job(job_id: str) -> None:
    with session() as s:
        job = s.get(OpenEOJob, job_id)
        if job is not None:
            s.delete(job)
            s.commit()


@threaded
def tasks_by_id(task_ids: list[str]) -> dict[str, TaskRecord]:
    if not task_ids:
        return {}
    with session() as s:
        return {t.id: t for t in s.exec(select(TaskRecord).where(col(TaskRecord.id).in_(task_ids)))}
