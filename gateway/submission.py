"""A task's submission: from a validated request to a recorded task with a flow run behind it.

In order: the Idempotency-Key, the callback URL, the cropper, the budget; then the task row is
reserved (the unique (key, Idempotency-Key) index picks one winner among concurrent POSTs), the run
created with parameters we built, and the run linked to the row. Every way this can fail leaves
either nothing the client could see, or a row an idempotent retry takes over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool

from eotasks.callbacks import check_callback_url_async
from eotasks.db import TaskRecord
from eotasks.errors import UserError
from eotasks.models import OpenEORequest, TaskRequestModel
from gateway import records
from gateway.auth import Caller
from gateway.errors import ApiError
from gateway.runs import NotAvailable, PrefectRuns

log = logging.getLogger("eotasks.gateway")


def body_hash(raw: Any) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_budget(task_type: str, params: Any) -> None:
    """What the task would read, hold and answer, from the catalogue, before it is created. A scene
    the catalogue does not have is left to the run, which answers as SPEC says."""
    from eotasks.budget import aoi_of, check_scene_task, check_time_series_task
    from eotasks.catalog.scenes import get_scene

    if task_type == "openeo":  # counted from its process graph by the openEO routes (eotasks.openeo.load)
        return
    aoi = aoi_of(params)
    if task_type == "mt_stats":
        check_time_series_task(params, aoi)
        return
    scene = get_scene(params.view_id)
    if scene is not None:
        check_scene_task(task_type, params, scene, aoi)


def run_labels(key: Caller, record: TaskRecord) -> dict[str, str]:
    """What an operator filters runs by in the Prefect UI: the key's name (never the key), the task
    id and the client's reference."""
    labels = {"eotasks.key": key.name, "eotasks.task_id": record.id}
    if record.reference:
        labels["eotasks.reference"] = record.reference
    return labels


def run_parameters(task: TaskRequestModel | OpenEORequest, record: TaskRecord) -> dict[str, Any]:
    """What the flow run gets: the ids, and the request's parameters as the model dumps them (plain
    data the models rebuilt: never a client's dict; never the key itself)."""
    params = task.params.model_dump(mode="json", exclude_none=True, exclude={"fields"})
    fields = getattr(task.params, "fields", None)
    if fields is not None:
        # Already plain JSON the validator rebuilt; dumping it as `Any` would inspect every
        # coordinate in one call that holds the GIL (a quarter second for thousands of fields).
        params["fields"] = fields
    return {"task_id": record.id, "api_key_id": record.api_key_id, "params": params}


async def submit(
    task: TaskRequestModel | OpenEORequest, raw: Any, idempotency_key: str | None, key: Caller, runs: PrefectRuns
) -> TaskRecord:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise ApiError(400, "Idempotency-Key must be 1 to 255 characters", [("Idempotency-Key", "length")])
    if task.callback_url:
        reason = await check_callback_url_async(task.callback_url)
        if reason:
            raise ApiError(400, f"callback_url {reason}", [("callback_url", reason)])
    cropper_ref = getattr(task.params, "cropper_ref", None)
    if cropper_ref is not None and not await records.cropper_exists(cropper_ref):
        raise ApiError(
            400,
            f"Unknown cropper_ref {cropper_ref}: save the geometry with POST /api/render/cropper/ first",
            [("params.cropper_ref", "unknown")],
        )
    try:
        await run_in_threadpool(check_budget, task.type, task.params)
    except UserError as exc:
        raise ApiError(400, exc.message, [(exc.field or "params", exc.message)]) from None
    # Hashing and dumping thousands of fields are single long calls that hold the GIL: off the loop.
    digest = await run_in_threadpool(body_hash, raw)
    record = TaskRecord(
        id=str(uuid.uuid4()),
        flow_run_id=None,
        api_key_id=key.id,
        type=task.type,
        reference=getattr(task.params, "reference", None),
        req_id=str(uuid.uuid4()),
        idempotency_key=idempotency_key,
        body_hash=digest,
        callback_url=task.callback_url,
    )
    for _ in range(2):
        if await records.reserve(record, key.daily_quota):
            break
        existing = await records.find_idempotent(key.id, idempotency_key or "")
        if existing is not None and existing.body_hash != digest:
            raise ApiError(
                409,
                "This Idempotency-Key was already used with a different request body",
                [("Idempotency-Key", "reused with another body")],
            )
        if existing is not None and not await records.release_if_abandoned(existing):
            return existing  # the same task (still being created a moment ago, or long since)
        # The winner gave up, or its reservation was abandoned: take the key over, once.
    else:
        raise ApiError(503, "The task service is busy; retry in a few seconds", headers={"Retry-After": "2"})
    try:
        parameters = await run_in_threadpool(run_parameters, task, record)
        flow_run_id = await runs.create(
            task.type,
            parameters,
            record.id,
            f"{key.id}:{idempotency_key}" if idempotency_key else None,
            labels=run_labels(key, record),
        )
    except NotAvailable:
        await records.forget(record.id)
        raise ApiError(
            400, f"Task type {task.type!r} is not available yet on this server", [("type", "not available yet")]
        ) from None
    except BaseException:
        await records.forget(record.id)
        raise
    try:
        await records.link_run(record.id, str(flow_run_id))
    except BaseException:
        # The run exists but no task points at it: cancel it rather than leave an orphan working (its
        # cancellation hook sends the row's callback, if the row is there), and drop the reservation
        # (if the database lets us: otherwise an idempotent retry takes it over once it is stale).
        await runs.cancel_quietly(str(flow_run_id))
        try:
            await records.forget(record.id)
        except Exception:
            pass
        raise
    record.flow_run_id = str(flow_run_id)
    log.info("task %s (%s) -> flow run %s", record.id, task.type, flow_run_id)
    return record
