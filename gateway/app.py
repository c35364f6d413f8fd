"""The HTTP API of SPEC §1: validate, map a POST onto a flow run and a GET onto that run's state.

Thin by design: no rasters here. Request models come from ``eotasks.models``; Prefect is reached
only through ``gateway.runs``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Union

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from shapely.geometry import shape as shapely_shape
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eotasks.answers import TASK_TYPE_BY_STATE, ended_answer
from eotasks.callbacks import check_callback_url
from eotasks.catalog.search import search_scenes
from eotasks.errors import UserError
from eotasks.db import ApiKey, CropperRecord, SceneRecord, TaskRecord, init_db, session
from eotasks.sensors import normalize_sensor_name
from eotasks.redact import install_access_log_redaction
from eotasks.models import BandmathRequest, ErrorBody, JpegRequest, LbeRequest, MtStatsRequest, SearchRequest, TaskAccepted

TaskUnion = Union[BandmathRequest, LbeRequest, JpegRequest, MtStatsRequest]
from eotasks.settings import get_settings
from eotasks.store import ResultStore, get_store, verify
from gateway import errors
from gateway.auth import new_rate_limiter, require_key
from gateway.errors import ApiError
from gateway.runs import NotAvailable, PrefectRuns

log = logging.getLogger("eotasks.gateway")
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 429)}


class BodyLimit:
    """413 for a body over the limit, whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await errors.error_response(413, f"The request body is larger than {self.limit} bytes")(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await errors.error_response(413, f"The request body is larger than {self.limit} bytes")(scope, receive, send)


class _TooLarge(Exception):
    pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    import asyncio

    from eotasks.callbacks import sender_loop

    await run_in_threadpool(init_db)
    await app.state.runs.start()
    sender = asyncio.create_task(sender_loop())  # drains the callback outbox
    try:
        yield
    finally:
        sender.cancel()
        await app.state.runs.stop()


def create_app(runs: PrefectRuns | None = None) -> FastAPI:
    settings = get_settings()
    install_access_log_redaction()  # ?api_key= and download signatures never reach the log
    app = FastAPI(
        title="eotasks", version="0.1.0", lifespan=lifespan,
        description="Crop satellite scenes by an AOI, compute spectral indices, render pictures and time-series statistics.",
    )
    app.state.runs = runs or PrefectRuns()
    app.state.rate_limiter = new_rate_limiter()
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    # --- tasks ------------------------------------------------------------------------------------
    async def submit(request: Request, task: Annotated[TaskUnion, Body(discriminator="type")], key: ApiKey = Depends(require_key)) -> JSONResponse:
        raw = await request.json()
        body_hash = hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        idem = request.headers.get("idempotency-key")
        if idem is not None and not 1 <= len(idem) <= 255:
            raise ApiError(400, "Idempotency-Key must be 1 to 255 characters", [("Idempotency-Key", "length")])
        if task.callback_url:
            reason = await run_in_threadpool(check_callback_url, task.callback_url)
            if reason:
                raise ApiError(400, f"callback_url {reason}", [("callback_url", reason)])
        cropper_ref = getattr(task.params, "cropper_ref", None)
        if cropper_ref is not None and not await run_in_threadpool(_cropper_exists, cropper_ref):
            raise ApiError(400, f"Unknown cropper_ref {cropper_ref}: save the geometry with POST /api/render/cropper/ first",
                           [("params.cropper_ref", "unknown")])
        try:
            await run_in_threadpool(_check_budget, task.type, task.params)
        except UserError as exc:
            raise ApiError(400, exc.message, [(exc.field or "params", "over the limit")]) from None
        task_id, req_id = str(uuid.uuid4()), str(uuid.uuid4())
        record = TaskRecord(
            id=task_id, flow_run_id=None, api_key_id=key.id, type=task.type,
            reference=getattr(task.params, "reference", None), req_id=req_id, idempotency_key=idem,
            body_hash=body_hash, callback_url=task.callback_url,
        )
        # Reserve the task first: with an Idempotency-Key the unique index picks one winner among
        # concurrent POSTs; the others answer with the winner's task (or a 409 for another body).
        if not await run_in_threadpool(_reserve, record):
            existing = await run_in_threadpool(_find_idempotent, key.id, idem)
            if existing is None:  # the winner gave up (the orchestrator was down): try again
                raise ApiError(503, "The task service is busy; retry in a few seconds", headers={"Retry-After": "2"})
            if existing.body_hash != body_hash:
                raise ApiError(409, "This Idempotency-Key was already used with a different request body",
                               [("Idempotency-Key", "reused with another body")])
            return _accepted(existing, settings.task_timeout_s)
        parameters = {"task_id": task_id, "api_key_id": key.id, "params": task.params.model_dump(mode="json", exclude_none=True)}
        try:
            flow_run_id = await app.state.runs.create(task.type, parameters, task_id, f"{key.id}:{idem}" if idem else None)
        except NotAvailable:
            await run_in_threadpool(_forget, task_id)
            raise ApiError(400, f"Task type {task.type!r} is not available yet on this server", [("type", "not available yet")]) from None
        except BaseException:
            await run_in_threadpool(_forget, task_id)
            raise
        record.flow_run_id = str(flow_run_id)
        try:
            await run_in_threadpool(_save, record)
        except BaseException:
            # The run exists but no task points at it: cancel it rather than leave an orphan working.
            await app.state.runs.cancel_quietly(str(flow_run_id))
            raise
        log.info("task %s (%s) -> flow run %s", task_id, task.type, flow_run_id)
        return _accepted(record, settings.task_timeout_s)

    async def status(task_id: str, request: Request, redirect: bool = Query(True), key: ApiKey = Depends(require_key)) -> Response:
        record = await run_in_threadpool(_owned_task, task_id, key.id)
        if record.flow_run_id is None:  # reserved a moment ago; its run is being created
            return JSONResponse({"task_type": "created", "status": "created", "stage": "authentication", "reference": record.reference,
                                 "token": key.masked, "result_url": "", "client_id": 0, "download_id": 0, "task_id": record.id},
                                headers={"X-Request-Id": record.req_id})
        run = await app.state.runs.status(record.flow_run_id)
        task_type = TASK_TYPE_BY_STATE.get(run.state_type, "started")
        headers = {"X-Request-Id": record.req_id}
        if task_type in ("created", "started"):
            return JSONResponse({
                "task_type": task_type, "status": task_type, "stage": run.stage, "reference": record.reference,
                "token": key.masked, "result_url": "", "client_id": 0, "download_id": 0, "task_id": record.id,
            }, headers=headers)
        if task_type in ("failed", "cancelled"):
            stage = record.stage if task_type == "failed" and record.stage else run.stage
            return JSONResponse(ended_answer(record.id, run.state_type, run.message, stage), headers=headers)
        result = run.result or {}
        files = result.get("files") or []
        if not files:  # statistics tasks answer with JSON
            return JSONResponse(result, headers=headers)
        store = await current_store(app)
        url = await run_in_threadpool(store.download_url, files[0])
        if not redirect:
            return JSONResponse({"task_type": "finished", "status": "finished", "task_id": record.id, "result_url": url,
                                 "files": [f.split("/", 1)[-1] for f in files]}, headers=headers)
        return PlainTextResponse(url, status_code=303, headers={**headers, "Location": url})

    async def cancel(task_id: str, key: ApiKey = Depends(require_key)) -> JSONResponse:
        record = await run_in_threadpool(_owned_task, task_id, key.id)
        if record.flow_run_id is None:
            raise ApiError(409, "The task is being created; retry in a moment", [("task_id", "being created")], headers={"Retry-After": "1"})
        run = await app.state.runs.status(record.flow_run_id, with_result=False)
        if run.state_type in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            raise ApiError(409, f"The task has already ended ({TASK_TYPE_BY_STATE[run.state_type]}) and cannot be cancelled",
                           [("task_id", "already ended")])
        await app.state.runs.cancel(record.flow_run_id)
        return JSONResponse(ended_answer(record.id, "CANCELLING", None, run.stage))

    async def list_tasks(page: int = Query(1, ge=1, le=100_000), limit: int = Query(50, ge=1, le=500), key: ApiKey = Depends(require_key)) -> JSONResponse:
        records, found = await run_in_threadpool(_list_tasks, key.id, page, limit)
        states = await app.state.runs.states([r.flow_run_id for r in records if r.flow_run_id])
        tasks = [{"task_id": r.id, "type": r.type, "reference": r.reference, "created": r.created_at.isoformat(),
                  "task_type": TASK_TYPE_BY_STATE.get(states.get(r.flow_run_id or "", "PENDING"), "created")} for r in records]
        return JSONResponse({"tasks": tasks, "meta": {"page": page, "limit": limit, "found": found}})

    for prefix in ("/api", "/api/gdw/api"):
        app.add_api_route(prefix, submit, methods=["POST"], status_code=202, response_model=TaskAccepted, responses=ERRORS,
                          summary="Submit a task", tags=["tasks"], name=f"submit{prefix}")
        app.add_api_route(prefix, list_tasks, methods=["GET"], summary="List your tasks, newest first", tags=["tasks"], responses=ERRORS, name=f"list{prefix}")
        app.add_api_route(prefix + "/{task_id}", status, methods=["GET"], summary="A task's state or result", tags=["tasks"],
                          responses={**ERRORS, 303: {"description": "Finished: Location is the download URL"}}, name=f"status{prefix}")
        app.add_api_route(prefix + "/{task_id}", cancel, methods=["DELETE"], summary="Cancel a task", tags=["tasks"], responses=ERRORS, name=f"cancel{prefix}")

    # --- cropper ----------------------------------------------------------------------------------
    @app.post("/api/render/cropper/", tags=["cropper"], responses=ERRORS, summary="Save a geometry; answer its cropper_ref")
    async def save_cropper(feature: dict[str, Any] = Body(...), key: ApiKey = Depends(require_key)) -> dict[str, str]:
        from eotasks.models import AOIParams
        from pydantic import ValidationError

        geometry = feature.get("geometry") if feature.get("type") == "Feature" else None
        if not isinstance(geometry, dict):
            raise ApiError(400, "The body must be a GeoJSON Feature with a Polygon or MultiPolygon geometry", [("geometry", "missing")])
        try:
            geometry = AOIParams(geometry=geometry).geometry  # rebuilt: nothing of the client's JSON is stored
        except ValidationError as exc:
            details = errors.validation_details(list(exc.errors()))
            raise ApiError(400, f"Invalid geometry: {details[0]['problem']}", [(d["field"], d["problem"]) for d in details]) from None
        canonical = json.dumps(geometry, sort_keys=True, separators=(",", ":"))
        ref = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        await run_in_threadpool(_save_cropper, ref, geometry)
        return {"cropper_ref": ref}

    # --- scene search (SPEC §4) --------------------------------------------------------------------
    async def search(request: SearchRequest, dataset: str | None = None, key: ApiKey = Depends(require_key)) -> JSONResponse:
        sensors = request.search.satellites
        if dataset is not None:
            long = normalize_sensor_name(dataset)
            if long is None:
                raise ApiError(404, f"Unknown dataset {dataset!r}", [("dataset", "unknown")])
            sensors = [long]
        shape = request.search.shape
        cloud = request.search.cloudCoverage
        scenes, found = await run_in_threadpool(
            search_scenes, sensors, request.search.date_ranges(), shapely_shape(shape) if shape else None,
            (cloud.from_, cloud.to) if cloud else (None, None), request.sort.get("date", "desc") == "desc",
            (request.page - 1) * request.limit, request.limit,
        )
        results = [search_result(r, request.fields) for r in scenes]
        return JSONResponse({"results": results, "meta": {"page": request.page, "found": found, "limit": request.limit}})

    app.add_api_route("/api/lms/search/v2", search, methods=["POST"], tags=["search"], responses=ERRORS, summary="Search scenes of any sensors")
    app.add_api_route("/api/lms/search/v2/{dataset}", search, methods=["POST"], tags=["search"], responses=ERRORS, summary="Search scenes of one dataset")

    # --- downloads (embedded default: the gateway serves the local result store) ----------------------
    @app.get("/api/download/{key:path}", tags=["downloads"], summary="A result file, by a signed URL")
    async def download(key: str, expires: int = Query(...), signature: str = Query(...)) -> FileResponse:
        store = await current_store(app)
        if store.is_s3 or not verify(key, expires, signature, settings.resolved_signing_secret):
            raise ApiError(403, "The download link is invalid or has expired")
        try:
            path = store.local_path(key)
        except ValueError:
            raise ApiError(404, "Not found") from None
        if not path.is_file():
            raise ApiError(404, "Not found")
        media = {".tif": "image/tiff", ".jp2": "image/jp2", ".png": "image/png", ".jpg": "image/jpeg", ".zip": "application/zip",
                 ".svg": "image/svg+xml", ".json": "application/json"}
        return FileResponse(path, media_type=media.get(path.suffix.lower(), "application/octet-stream"), filename=path.name)

    @app.get("/health", tags=["ops"], include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def current_store(app: FastAPI, ttl_s: float = 30.0) -> ResultStore:
    """The result store, re-read every ``ttl_s`` so a block edited in the Prefect UI takes effect.
    Loaded in a worker thread: a block's ``load`` is a coroutine inside an event loop."""
    cached = getattr(app.state, "store", None)
    now = time.monotonic()
    if cached is None or now - cached[1] > ttl_s:
        cached = (await run_in_threadpool(get_store), now)
        app.state.store = cached
    return cached[0]


def search_result(record: SceneRecord, fields: list[str] | None) -> dict[str, Any]:
    out = {"sceneID": record.scene_id, "view_id": record.view_id, "date": record.date.isoformat(), "cloudCoverage": record.cloud_cover,
           "satelliteName": record.sensor, "dataGeometry": record.footprint, "crs": record.crs,
           "bands": sorted(record.assets), "maskBand": record.mask_band}
    return {k: v for k, v in out.items() if k in fields} if fields else out


def _accepted(record: TaskRecord, timeout: int) -> JSONResponse:
    return JSONResponse({"status": "authentication", "task_id": record.id, "req_id": record.req_id, "task_timeout": timeout},
                        status_code=202, headers={"X-Request-Id": record.req_id})


def _find_idempotent(key_id: int, idem: str) -> TaskRecord | None:
    with session() as s:
        return s.exec(select(TaskRecord).where(TaskRecord.api_key_id == key_id, TaskRecord.idempotency_key == idem)).first()


def _save(record: TaskRecord) -> None:
    with session() as s:
        s.merge(record)
        s.commit()


def _reserve(record: TaskRecord) -> bool:
    """Insert the task row; False when another task already holds its (key, Idempotency-Key)."""
    from sqlalchemy.exc import IntegrityError

    with session() as s:
        s.add(record)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            return False
    return True


def _forget(task_id: str) -> None:
    with session() as s:
        record = s.get(TaskRecord, task_id)
        if record is not None and record.flow_run_id is None:
            s.delete(record)
            s.commit()


def _check_budget(task_type: str, params: Any) -> None:
    """What the task would read (and jpeg would draw), from the catalogue, before it is created. A
    scene the catalogue does not have is left to the run, which answers as SPEC says."""
    from eotasks.budgets import aoi_of, check_scene_task, check_time_series_task
    from eotasks.catalog.scenes import get_scene

    aoi = aoi_of(params)
    if task_type == "mt_stats":
        check_time_series_task(params, aoi)
        return
    scene = get_scene(params.view_id)
    if scene is not None:
        check_scene_task(task_type, params, scene, aoi)


def _cropper_exists(ref: str) -> bool:
    with session() as s:
        return s.get(CropperRecord, ref) is not None


def _owned_task(task_id: str, key_id: int) -> TaskRecord:
    if not _UUID4.match(task_id):
        raise ApiError(404, "Task not found", [("task_id", "not a task id")])
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is None or record.api_key_id != key_id:
        raise ApiError(404, "Task not found", [("task_id", "unknown")])
    return record


def _list_tasks(key_id: int, page: int, limit: int) -> tuple[list[TaskRecord], int]:
    from sqlalchemy import func

    with session() as s:
        found = s.exec(select(func.count()).select_from(TaskRecord).where(TaskRecord.api_key_id == key_id)).one()
        rows = s.exec(select(TaskRecord).where(TaskRecord.api_key_id == key_id)
                      .order_by(TaskRecord.created_at.desc()).offset((page - 1) * limit).limit(limit)).all()  # type: ignore[attr-defined]
        return list(rows), int(found)


def _save_cropper(ref: str, geometry: dict[str, Any]) -> None:
    with session() as s:
        if s.get(CropperRecord, ref) is None:
            s.add(CropperRecord(id=ref, geometry=geometry))
            s.commit()


app = create_app()
