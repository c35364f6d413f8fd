"""Request bodies: bounded in size, parsed and validated off the event loop.

Validating a request is geometry work (validity, areas, vertex counts of thousands of fields), so it
runs in a worker thread: one client's large body never holds up another's answer. A body over the
size limit is a 413 whether or not the client said how long it was (chunked uploads included): the
middleware reads it up to the limit before the route sees it.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ApiError, error_response, is_openeo, openeo_error

T = TypeVar("T")


class BodyLimit:
    """413 for a body over ``limit`` bytes, with or without Content-Length; the route then reads
    the body from memory."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        text = f"The request body is larger than {self.limit} bytes"
        openeo = is_openeo(scope.get("path", ""))
        too_large = openeo_error(413, "PayloadTooLarge", text) if openeo else error_response(413, text)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_large(scope, receive, send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                return await too_large(scope, receive, send)
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)


async def json_body(request: Request) -> Any:
    """The body as JSON; a 400 that says what is wrong when it is not (curl's default is a form)."""
    body = await request.body()
    try:
        return await run_in_threadpool(orjson.loads, body) if len(body) > 65536 else orjson.loads(body)
    except orjson.JSONDecodeError:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and kind != "application/json" and not kind.endswith("+json"):
            raise ApiError(
                400, f"The body must be JSON (Content-Type: application/json), not {kind}", [("body", "must be JSON")]
            ) from None
        raise ApiError(400, "Malformed JSON in the request body", [("body", "the body is not valid JSON")]) from None


async def validated(request: Request, adapter: TypeAdapter[T]) -> tuple[T, Any]:
    """(the body validated by ``adapter``, the body as sent), validated in a worker thread."""
    raw = await json_body(request)
    try:
        return await run_in_threadpool(adapter.validate_python, raw), raw
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
