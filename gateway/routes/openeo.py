"""openEO API 1.2 (SPEC §8) at ``/openeo/1.2``: a thin layer over the same keys, submission path,
records, flows and result store as the tasks.

A synchronous ``POST /result`` and a started batch job are each a task of type ``openeo`` (one
flow run of the ``openeo`` deployment), submitted by ``gateway.submission.submit`` like any task:
the same idempotency, quota, records, recovery and answers from our database once ended. A job is
a row of its own (``openeo_jobs``) that points at the task of its latest start.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from eotasks.db import OpenEOJob, TaskRecord, utcnow
from eotasks.models import OpenEOParams, OpenEORequest
from eotasks.openeo.errors import OpenEOError, from_failure
from eotasks.settings import get_settings
from gateway import records
from gateway.auth import Caller, authorise_token, basic_login, issue_token
from gateway.deps import Runs, Store
from gateway.errors import ApiError, openeo_error
from gateway.routes.downloads import MEDIA
from gateway.task_answers import Current, current, wait_for_change

PREFIX = "/openeo/1.2"
API_VERSION = "1.2.0"
router = APIRouter(prefix=PREFIX, tags=["openEO"])
well_known = APIRouter(tags=["openEO"])


class OpenEOHTTPError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.code, self.message, self.headers = status, code, message, headers


def install(app: FastAPI) -> None:
    @app.exception_handler(OpenEOHTTPError)
    async def _openeo(request: Request, exc: OpenEOHTTPError) -> JSONResponse:
        return openeo_error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(OpenEOError)
    async def _process(request: Request, exc: OpenEOError) -> JSONResponse:
        return openeo_error(exc.status, exc.code, exc.message.split(": ", 1)[-1])

    app.include_router(well_known)
    app.include_router(router)


def base_url(request: Request) -> str:
    public = get_settings().public_url
    root = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return root + PREFIX


# --- authentication -------------------------------------------------------------------------------


async def openeo_caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    if not header:
        raise OpenEOHTTPError(401, "AuthenticationRequired", "Unauthorized.")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.startswith("basic//"):
        raise OpenEOHTTPError(403, "AuthenticationSchemeInvalid", "Authentication method not supported.")
    record, refused = await run_in_threadpool(authorise_token, credentials.removeprefix("basic//"), request.app.state.rate_limit)
    if record is None:
        raise OpenEOHTTPError(403, "TokenInvalid", "Authorization token has expired or is invalid. Please authenticate again.")
    if refused is not None:
        raise OpenEOHTTPError(429, "TooManyRequests", refused.message, {"Retry-After": str(refused.retry_after_s)})
    return Caller.of(record)


OpenEOKey = Annotated[Caller, Depends(openeo_caller)]


@router.get("/credentials/basic", summary="An access token for HTTP Basic (key name, key)")
async def credentials_basic(request: Request) -> dict[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if not header:
        raise OpenEOHTTPError(401, "AuthenticationRequired", "Unauthorized.")
    if scheme.lower() != "basic":
        raise OpenEOHTTPError(403, "AuthenticationSchemeInvalid", "Authentication method not supported.")
    try:
        name, _, key = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OpenEOHTTPError(403, "CredentialsInvalid", "Credentials are not correct.") from None
    record = await run_in_threadpool(basic_login, name, key)
    if record is None:
        raise OpenEOHTTPError(403, "CredentialsInvalid", "Credentials are not correct.")
    return {"access_token": issue_token(record)}


@router.get("/me", summary="The account of the token")
async def me(key: OpenEOKey, request: Request) -> dict[str, Any]:
    return {"user_id": key.name, "name": key.name, "links": [{"rel": "related", "href": f"{base_url(request)}/jobs"}]}


# --- capabilities ---------------------------------------------------------------------------------

ENDPOINTS = [
    ("/", ["GET"]),
    ("/conformance", ["GET"]),
    ("/file_formats", ["GET"]),
    ("/credentials/basic", ["GET"]),
    ("/me", ["GET"]),
    ("/collections", ["GET"]),
    ("/collections/{collection_id}", ["GET"]),
    ("/processes", ["GET"]),
    ("/result", ["POST"]),
    ("/jobs", ["GET", "POST"]),
    ("/jobs/{job_id}", ["GET", "PATCH", "DELETE"]),
    ("/jobs/{job_id}/results", ["GET", "POST", "DELETE"]),
    ("/jobs/{job_id}/logs", ["GET"]),
]
CONFORMANCE = [
    "https://api.openeo.org/1.2.0",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
]


@well_known.get("/.well-known/openeo", summary="openEO versions served here")
async def well_known_openeo(request: Request) -> dict[str, Any]:
    return {"versions": [{"url": base_url(request) + "/", "api_version": API_VERSION, "production": True}]}


@router.get("", include_in_schema=False)
@router.get("/", summary="openEO capabilities")
async def capabilities(request: Request) -> dict[str, Any]:
    url = base_url(request)
    return {
        "api_version": API_VERSION,
        "backend_version": "0.1.0",
        "stac_version": "1.0.0",
        "type": "Catalog",
        "id": "eotasks",
        "title": "eotasks",
        "description": "eotasks as an openEO back-end: every process graph is a Prefect flow run on a warm worker.",
        "production": True,
        "endpoints": [{"path": path, "methods": methods} for path, methods in ENDPOINTS],
        "conformsTo": CONFORMANCE,
        "links": [
            {"rel": "self", "href": f"{url}/", "type": "application/json"},
            {"rel": "data", "href": f"{url}/collections", "type": "application/json"},
            {"rel": "conformance", "href": f"{url}/conformance", "type": "application/json"},
            {"rel": "version-history", "href": f"{url.removesuffix(PREFIX)}/.well-known/openeo", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
async def conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE}


@router.get("/file_formats", summary="Output formats of save_result")
async def file_formats() -> dict[str, Any]:
    from eotasks.openeo.formats import FORMATS

    return {"input": {}, "output": FORMATS}


@router.get("/collections", summary="The catalogue's collections")
async def collections(request: Request) -> dict[str, Any]:
    from eotasks.openeo.collections import COLLECTIONS, collection_metadata

    url = base_url(request)
    items = await run_in_threadpool(lambda: [collection_metadata(c, url) for c in COLLECTIONS.values()])
    return {"collections": items, "links": [{"rel": "self", "href": f"{url}/collections"}]}


@router.get("/collections/{collection_id}", summary="One collection")
async def collection(collection_id: str, request: Request) -> dict[str, Any]:
    from eotasks.openeo.collections import COLLECTIONS, collection_metadata

    found = COLLECTIONS.get(collection_id)
    if found is None:
        raise OpenEOHTTPError(404, "CollectionNotFound", f"Collection '{collection_id}' does not exist.")
    return await run_in_threadpool(collection_metadata, found, base_url(request))


@router.get("/processes", summary="The processes this back-end runs, with their official definitions")
async def processes() -> dict[str, Any]:
    import eotasks.openeo.cube  # noqa: F401  (registers the cube processes)
    from eotasks.openeo.processes import PROCESSES
    from eotasks.openeo.specs import definition

    return {"processes": [definition(pid) for pid in sorted(PROCESSES)], "links": []}


# --- evaluation -----------------------------------------------------------------------------------


async def process_graph_of(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the body, its process graph validated and rebuilt); openEO's 400 naming the problem."""
    try:
        body = await request.json()
    except ValueError:
        raise OpenEOHTTPError(400, "ProcessGraphMissing", "The request body must be JSON with a `process` object.") from None
    if not isinstance(body, dict):
        raise OpenEOHTTPError(400, "ProcessGraphMissing", "The request body must be a JSON object.")
    process = body.get("process", body if "process_graph" in body else None)
    if not isinstance(process, dict) or not isinstance(process.get("process_graph"), dict):
        raise OpenEOHTTPError(400, "ProcessGraphMissing", "Invalid process specified. It doesn't contain a process graph.")
    graph = await run_in_threadpool(checked_graph, process["process_graph"])
    return body, graph


def checked_graph(graph: dict[str, Any]) -> dict[str, Any]:
    import eotasks.openeo.cube  # noqa: F401  (registers the cube processes)
    from eotasks.openeo.collections import COLLECTIONS
    from eotasks.openeo.graph import Catalogue, rebuilt, validate

    validate(graph, Catalogue({cid: c.bands for cid, c in COLLECTIONS.items()}))
    return rebuilt(graph)


async def submit_graph(
    graph: dict[str, Any], raw: Any, key: Caller, runs: Any, job_id: str | None, idempotency_key: str | None
) -> TaskRecord:
    from gateway.submission import submit

    request = OpenEORequest(params=OpenEOParams(process_graph=graph, job_id=job_id))
    try:
        return await submit(request, raw, idempotency_key, key, runs)
    except ApiError as exc:
        if exc.status == 400 and exc.details and exc.details[0].get("field") == "type":
            raise OpenEOHTTPError(
                503, "ServiceUnavailable", "The openEO executor is not available yet; retry in a few seconds"
            ) from None
        code = {429: "TooManyRequests", 402: "PaymentRequired", 503: "ServiceUnavailable", 409: "IdempotencyConflict"}.get(
            exc.status, "BadRequest"
        )
        raise OpenEOHTTPError(exc.status, code, exc.error, exc.headers) from None


@router.post("/result", summary="Process and download data synchronously")
async def result(request: Request, key: OpenEOKey, runs: Runs, store: Store) -> Response:
    from eotasks.openeo.load import estimate_values

    body, graph = await process_graph_of(request)
    settings = get_settings()
    await run_in_threadpool(estimate_values, graph, settings.openeo_sync_max_values, True)
    record = await submit_graph(graph, body, key, runs, None, request.headers.get("idempotency-key"))
    now = await current(record, runs)
    deadline = time.monotonic() + settings.openeo_sync_timeout_s
    while now.task_type not in ("finished", "failed", "cancelled"):
        left = deadline - time.monotonic()
        if left <= 0:  # nobody waits for it any more: stop it (its hook records the cancel)
            if record.flow_run_id:
                with contextlib.suppress(Exception):
                    await runs.cancel(record.flow_run_id)
            raise OpenEOHTTPError(
                400,
                "ProcessGraphComplexity",
                "The process did not finish within the synchronous time limit: use a batch job (POST /jobs).",
            )
        record, now = await wait_for_change(record, runs, now, min(left, 30.0))
    if now.task_type != "finished":
        code, message = from_failure(now.failure.get("error") if now.failure else None)
        raise OpenEOHTTPError(400 if code != "Internal" else 500, code, message)
    key_ = now.files[0]
    content = await run_in_threadpool(store.get, key_)
    suffix = "." + key_.rsplit(".", 1)[-1].lower()
    return Response(content, media_type=MEDIA.get(suffix, "application/octet-stream"), headers={"OpenEO-Identifier": record.id})


# --- batch jobs -----------------------------------------------------------------------------------

STATUS_BY_TASK = {"created": "queued", "started": "running", "finished": "finished", "failed": "error", "cancelled": "canceled"}


async def job_status(job: OpenEOJob, runs: Any) -> tuple[str, Current | None, TaskRecord | None]:
    if job.task_id is None:
        return "created", None, None
    record = await records.owned_task(job.task_id, job.api_key_id)
    now = await current(record, runs)
    return STATUS_BY_TASK.get(now.task_type, "queued"), now, record


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_body(job: OpenEOJob, status: str, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id,
        "title": job.title,
        "description": job.description,
        "status": status,
        "created": rfc3339(job.created_at),
        "updated": rfc3339(job.updated_at),
    }
    if full:
        out.update(process=job.process, plan=job.plan, budget=job.budget)
    return {k: v for k, v in out.items() if v is not None}  # the API's fields are not nullable


async def owned_job(job_id: str, key: Caller) -> OpenEOJob:
    job = await records.owned_job(job_id, key.id)
    if job is None:
        raise OpenEOHTTPError(404, "JobNotFound", f"The batch job '{job_id}' does not exist.")
    return job


@router.post("/jobs", status_code=201, summary="Create a batch job")
async def create_job(request: Request, key: OpenEOKey) -> Response:
    body, graph = await process_graph_of(request)
    from eotasks.openeo.load import estimate_values

    await run_in_threadpool(estimate_values, graph, get_settings().openeo_batch_max_values, False)
    process = {k: v for k, v in (body.get("process") or {}).items() if k in ("id", "summary", "description")}
    job = OpenEOJob(
        id=f"j-{uuid.uuid4().hex}",
        api_key_id=key.id,
        title=_text(body.get("title")),
        description=_text(body.get("description")),
        process={**{k: _text(v) for k, v in process.items()}, "process_graph": graph},
        plan=_text(body.get("plan")),
        budget=body.get("budget") if isinstance(body.get("budget"), (int, float)) else None,
    )
    await records.create_job(job)
    location = f"{base_url(request)}/jobs/{job.id}"
    return Response(status_code=201, headers={"Location": location, "OpenEO-Identifier": job.id})


def _text(value: Any) -> str | None:
    return value[:2000] if isinstance(value, str) else None


@router.get("/jobs", summary="The key's batch jobs")
async def list_jobs(key: OpenEOKey, runs: Runs, limit: int = 100) -> dict[str, Any]:
    jobs = await records.list_jobs(key.id, max(1, min(limit, 1000)))
    out = []
    for job in jobs:
        status, _, _ = await job_status(job, runs)
        out.append(job_body(job, status, full=False))
    return {"jobs": out, "links": []}


@router.get("/jobs/{job_id}", summary="A batch job")
async def describe_job(job_id: str, key: OpenEOKey, runs: Runs) -> dict[str, Any]:
    job = await owned_job(job_id, key)
    status, _, _ = await job_status(job, runs)
    return job_body(job, status, full=True)


@router.patch("/jobs/{job_id}", status_code=204, summary="Modify a batch job that is not queued or running")
async def update_job(job_id: str, request: Request, key: OpenEOKey, runs: Runs) -> Response:
    job = await owned_job(job_id, key)
    status, _, _ = await job_status(job, runs)
    if status in ("queued", "running"):
        raise OpenEOHTTPError(400, "JobLocked", "Batch job is locked due to a queued or running batch computation.")
    try:
        body = await request.json()
    except ValueError:
        raise OpenEOHTTPError(400, "BadRequest", "The request body must be JSON.") from None
    changes: dict[str, Any] = {}
    for name in ("title", "description", "plan"):
        if name in body:
            changes[name] = _text(body[name])
    if "budget" in body:
        changes["budget"] = body["budget"] if isinstance(body["budget"], (int, float)) else None
    if "process" in body:
        _, graph = await process_graph_of(request)
        changes["process"] = {"process_graph": graph}
    await records.update_job(job.id, **changes)
    return Response(status_code=204)


async def stop_run(job: OpenEOJob, runs: Any) -> None:
    """Cancel the job's run if it is queued or running; its task's answer is cancelled from now on."""
    from eotasks.outcomes import record_ending

    status, now, record = await job_status(job, runs)
    if status in ("queued", "running") and record is not None and record.flow_run_id:
        await runs.cancel(record.flow_run_id)
        stage = now.stage if now else None
        await run_in_threadpool(record_ending, record.id, "cancelled", error="The task was cancelled", stage=stage)


@router.delete("/jobs/{job_id}", status_code=204, summary="Delete a batch job (cancelling its run)")
async def delete_job(job_id: str, key: OpenEOKey, runs: Runs) -> Response:
    job = await owned_job(job_id, key)
    await stop_run(job, runs)
    await records.delete_job(job.id)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/results", status_code=202, summary="Start a batch job")
async def start_job(job_id: str, request: Request, key: OpenEOKey, runs: Runs) -> Response:
    job = await owned_job(job_id, key)
    status, _, _ = await job_status(job, runs)
    if status in ("queued", "running"):
        return Response(status_code=202)  # already started: the request is ignored (openEO API)
    graph = job.process["process_graph"]
    started = job.task_id
    # One start per job state: a retried start of the same job reuses its task (Idempotency-Key).
    record = await submit_graph(graph, {"job": job.id, "after": started}, key, runs, job.id, f"openeo-job:{job.id}:{started}")
    await records.update_job(job.id, task_id=record.id)
    return Response(status_code=202)


@router.delete("/jobs/{job_id}/results", status_code=204, summary="Cancel a batch job's run")
async def cancel_job(job_id: str, key: OpenEOKey, runs: Runs) -> Response:
    await stop_run(await owned_job(job_id, key), runs)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/results", summary="A finished batch job's results (STAC), with signed URLs")
async def job_results(job_id: str, request: Request, key: OpenEOKey, runs: Runs, store: Store) -> dict[str, Any]:
    from eotasks.openeo.formats import MEDIA as FORMAT_MEDIA

    job = await owned_job(job_id, key)
    status, now, record = await job_status(job, runs)
    if status == "error" and now is not None:
        code, message = from_failure(now.failure.get("error") if now.failure else None)
        raise OpenEOHTTPError(424, code, message)
    if status != "finished" or now is None:
        raise OpenEOHTTPError(
            400, "JobNotFinished", "Batch job has not finished computing the results yet. Please try again later."
        )
    media = {
        ext: m
        for m, ext in (
            (FORMAT_MEDIA["GTiff"], "tif"),
            (FORMAT_MEDIA["netCDF"], "nc"),
            (FORMAT_MEDIA["JSON"], "json"),
            (FORMAT_MEDIA["CSV"], "csv"),
            (FORMAT_MEDIA["PNG"], "png"),
        )
    }
    assets = {}
    for file_key in now.files:
        url = await run_in_threadpool(store.download_url, file_key) if store.is_s3 else store.download_url(file_key)
        name = file_key.rsplit("/", 1)[-1]
        assets[name] = {
            "href": url,
            "type": media.get(name.rsplit(".", 1)[-1], "application/octet-stream"),
            "roles": ["data"],
            "title": name,
        }
    ended = record.ended_at if record is not None else None
    bbox = await run_in_threadpool(footprint_of, job.process.get("process_graph", {}))
    west, south, east, north = bbox
    return {
        "stac_version": "1.0.0",
        "type": "Feature",
        "id": job.id,
        "bbox": list(bbox),
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {
            k: v
            for k, v in {"datetime": rfc3339(ended or utcnow()), "title": job.title, "description": job.description}.items()
            if v
        },
        "assets": assets,
        "links": [{"rel": "self", "href": f"{base_url(request)}/jobs/{job.id}/results", "type": "application/json"}],
    }


def footprint_of(graph: dict[str, Any]) -> tuple[float, float, float, float]:
    """Lon/lat bounds of what the graph loads (its load_collection extents); the world without one."""
    from eotasks.openeo.load import extent_lonlat

    bounds = []
    for node in graph.values():
        extent = node.get("arguments", {}).get("spatial_extent") if node.get("process_id") == "load_collection" else None
        try:
            bounds.append(extent_lonlat(extent))
        except Exception:  # a parameter, or no extent: unknown
            continue
    if not bounds:
        return (-180.0, -90.0, 180.0, 90.0)
    return (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))


@router.get("/jobs/{job_id}/logs", summary="A batch job's log lines (its run's Prefect logs)")
async def job_logs(job_id: str, key: OpenEOKey, runs: Runs, limit: int = 1000, level: str = "debug") -> dict[str, Any]:
    job = await owned_job(job_id, key)
    _, _, record = await job_status(job, runs)
    if record is None or record.flow_run_id is None:
        return {"logs": [], "links": []}
    minimum = {"debug": 0, "info": 20, "warning": 30, "error": 40}.get(level, 0)
    lines = await runs.logs(record.flow_run_id, max(1, min(limit, 10_000)), minimum)
    levels = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "error"}
    logs = [
        {"id": line["id"], "level": levels.get(line["level"], "info"), "message": line["message"], "time": line["time"]}
        for line in lines
    ]
    return {"logs": logs, "links": []}
