"""Tasks (SPEC §1, §7): submit, ask for (or wait for) one, cancel, list; served at ``/api`` and
``/api/gdw/api`` alike."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from eotasks import callbacks
from eotasks.answers import TASK_TYPE_BY_STATE, failed_answer
from eotasks.models import ErrorBody, TaskAccepted, TaskFailed, TaskFinished, TaskPending, TaskRequest
from eotasks.outcomes import ENDED, record_ending
from eotasks.settings import get_settings
from gateway import records
from gateway.body import validated
from gateway.deps import Key, Runs, Store
from gateway.errors import ApiError
from gateway.submission import submit
from gateway.task_answers import Current, current, pending_body, wait_for_change

router = APIRouter(tags=["tasks"])
WHY = {
    400: "Invalid input: details name the field",
    401: "No API key",
    403: "Unknown or revoked API key",
    404: "No such task of this key, or no such dataset",
    409: "Conflicts with the task's state or an earlier request",
    413: "The body is larger than the limit",
    429: "Rate limit or daily quota used up; Retry-After says when to try again",
    503: "Prefect cannot be reached for a moment; Retry-After says when to try again",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route really gives (SPEC's body), for its OpenAPI entry."""
    return {code: {"model": ErrorBody, "description": WHY[code]} for code in codes}


KEYED = (401, 403, 429)  # every route that takes a key
TASK_REQUEST: TypeAdapter[Any] = TypeAdapter(TaskRequest)


@functools.lru_cache(maxsize=1)
def request_body_schema() -> dict[str, Any]:
    """The request body's OpenAPI entry: the four task types as one discriminated union (the models
    validate it; gateway.app puts their schemas in the document's components)."""
    from eotasks.models import task_examples

    schema = TASK_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema, "examples": task_examples()}}}}


def accepted(record: Any) -> JSONResponse:
    body = TaskAccepted(task_id=record.id, req_id=record.req_id, task_timeout=get_settings().task_timeout_s)
    return JSONResponse(body.model_dump(), status_code=202, headers={"X-Request-Id": record.req_id})


@router.post(
    "",
    status_code=202,
    response_model=TaskAccepted,
    responses=errors(400, *KEYED, 409, 413, 503),
    summary="Submit a task",
    openapi_extra=request_body_schema(),
)
async def submit_task(request: Request, key: Key, runs: Runs) -> JSONResponse:
    task, raw = await validated(request, TASK_REQUEST)
    return accepted(await submit(task, raw, request.headers.get("idempotency-key"), key, runs))


@router.get(
    "/{task_id}",
    summary="A task's state or result; with wait, as soon as it changes",
    responses={
        **errors(400, *KEYED, 404, 503),
        200: {
            "model": TaskPending | TaskFinished | TaskFailed,
            "description": "Not finished, failed or cancelled; a statistics task's answer",
        },
        303: {"description": "Finished: Location is the download URL"},
    },
)
async def task_status(
    task_id: str,
    key: Key,
    runs: Runs,
    store: Store,
    redirect: Annotated[bool, Query(description="false: the URL in a JSON body instead of a 303")] = True,
    wait: Annotated[float | None, Query(gt=0, le=60, description="seconds to wait for a change of status or stage")] = None,
) -> Response:
    record = await records.owned_task(task_id, key.id)
    now = await current(record, runs)
    if wait and now.task_type in ("created", "started"):
        record, now = await wait_for_change(record, runs, now, wait)
    headers = {"X-Request-Id": record.req_id}
    if now.task_type in ("created", "started"):
        return JSONResponse(pending_body(record, key, now), headers=headers)
    if now.failure is not None:
        return JSONResponse(now.failure, headers=headers)
    if now.answer_key is not None:  # a statistics task: its JSON answer, as the run published it
        return Response(await run_in_threadpool(store.get, now.answer_key), media_type="application/json", headers=headers)
    # A folder's link is an HMAC, signed here; S3's presigning may refresh credentials: a thread.
    url = await run_in_threadpool(store.download_url, now.files[0]) if store.is_s3 else store.download_url(now.files[0])
    if not redirect:
        body = TaskFinished(task_id=record.id, result_url=url, files=[f.rsplit("/", 1)[-1] for f in now.files])
        return JSONResponse(body.model_dump(), headers=headers)
    return PlainTextResponse(url, status_code=303, headers={**headers, "Location": url})


@router.delete(
    "/{task_id}",
    status_code=202,
    responses={**errors(*KEYED, 404, 409, 503), 202: {"model": TaskFailed}},
    summary="Cancel a task",
)
async def cancel_task(task_id: str, key: Key, runs: Runs) -> JSONResponse:
    record = await records.owned_task(task_id, key.id)
    now = await current(record, runs)
    if now.task_type in ENDED:
        raise ApiError(
            409, f"The task has already ended ({now.task_type}) and cannot be cancelled", [("task_id", "already ended")]
        )
    if record.flow_run_id is None:
        raise ApiError(
            409, "The task is being created; retry in a moment", [("task_id", "being created")], headers={"Retry-After": "1"}
        )
    await runs.cancel(record.flow_run_id)
    # Its answer is "cancelled" from now on (SPEC §7), recorded here: a run cancelled while queued
    # never runs its hooks, and a running one may answer something else on its way out.
    await run_in_threadpool(record_ending, record.id, "cancelled", error="The task was cancelled", stage=now.stage)
    fresh = await records.owned_task(record.id, key.id)
    answer = failed_answer(fresh.id, fresh.status or "cancelled", fresh.error, fresh.stage or now.stage)
    if fresh.callback_url:
        await run_in_threadpool(callbacks.enqueue, fresh.id, fresh.callback_url, answer)
    return JSONResponse(answer, status_code=202)


@router.get("", summary="Your tasks, newest first; with wait, as soon as one of them changes", responses=errors(400, *KEYED, 503))
async def list_tasks(
    key: Key,
    runs: Runs,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    wait: Annotated[
        float | None, Query(gt=0, le=60, description="seconds to wait for a change of a listed task's status")
    ] = None,
) -> JSONResponse:
    listing = await Listing.read(key.id, runs, page, limit)
    if wait and listing.open_runs:
        listing = await listing.changed(runs, wait)
    return JSONResponse({"tasks": listing.tasks, "meta": {"page": page, "limit": limit, "found": listing.found}})


class Listing:
    """One page of a key's tasks with their status: ended ones from our rows, the others' from
    Prefect (one query for the page)."""

    def __init__(self, key_id: int, page: int, limit: int, rows: list[Any], found: int, states: dict[str, str]):
        self.key_id, self.page, self.limit, self.rows, self.found, self.states = key_id, page, limit, rows, found, states
        self.open_runs = [r.flow_run_id for r in rows if r.status not in ENDED and r.flow_run_id]
        self.tasks = [
            {
                "task_id": r.id,
                "type": r.type,
                "reference": r.reference,
                "created": r.created_at.isoformat(),
                "task_type": self._task_type(r),
            }
            for r in rows
        ]

    def _task_type(self, r: Any) -> str:
        if r.status in ENDED:
            return str(r.status)
        from_prefect = TASK_TYPE_BY_STATE.get(self.states.get(r.flow_run_id or "", "PENDING"), "created")
        return "started" if r.status == "started" and from_prefect == "created" else from_prefect

    @classmethod
    async def read(cls, key_id: int, runs: Any, page: int, limit: int, states: dict[str, str] | None = None) -> Listing:
        rows, found = await records.list_tasks(key_id, page, limit)
        if states is None:
            open_runs = [r.flow_run_id for r in rows if r.status not in ENDED and r.flow_run_id]
            states = await runs.states(open_runs) if open_runs else {}
        return cls(key_id, page, limit, rows, found, states)

    def summary(self) -> list[tuple[str, str]]:
        return [(t["task_id"], t["task_type"]) for t in self.tasks]

    async def changed(self, runs: Any, seconds: float) -> Listing:
        """The page again at the first change of a task's status on it (or a task added), or after
        ``seconds``: our rows every 0.25 s (runs record their endings there), Prefect every second."""
        deadline = time.monotonic() + seconds
        last_prefect = time.monotonic()
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(0.25, left))
            ask_prefect = time.monotonic() - last_prefect >= 1.0
            if ask_prefect:
                last_prefect = time.monotonic()
            fresh = await Listing.read(self.key_id, runs, self.page, self.limit, None if ask_prefect else self.states)
            if fresh.summary() != self.summary():
                return fresh
        return self


__all__ = ["Current", "router"]
