"""Every error is ``{"status": false, "error": "<one sentence>", "details": [{"field", "problem"}]}``.

One table says which exception is which status (as titiler's ``errors.py`` does); the handlers
below turn each into that body. Infrastructure that cannot be reached is a 503 with Retry-After;
anything else unexpected is a 500 whose details stay in the gateway's log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from eotasks.errors import UserError
from eotasks.models import TASK_TYPES

RETRY_AFTER_S = 5
log = logging.getLogger("eotasks.gateway")


class ApiError(Exception):
    def __init__(self, status: int, error: str, details: Iterable[tuple[str, str]] = (), headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = [{"field": f, "problem": p} for f, p in details]
        self.headers = headers or {}


# Exceptions of the service's own code and the status each one is: a client's mistake a plain 400.
STATUS_BY_EXCEPTION: dict[type[Exception], int] = {UserError: 400}


def error_response(
    status: int, error: str, details: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"status": False, "error": error, "details": details or []}, status_code=status, headers=headers)


def _field(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    # Discriminated unions put the tag in the path: body -> bandmath -> params -> bbox.
    if loc and loc[0] in TASK_TYPES:
        loc = loc[1:]
    if err.get("type") == "union_tag_invalid" or err.get("type") == "union_tag_not_found":
        return "type"
    ctx = err.get("ctx") or {}
    if "field" in ctx and loc and loc[-1] == "params":
        loc = [*loc, ctx["field"]]
    elif "field" in ctx and loc and str(ctx["field"]).split("[")[0].split(".")[0] == loc[-1]:
        loc = [*loc[:-1], str(ctx["field"])]  # a validator naming a part of its field: fields[3], histogram.edges
    # Lists: bbox.0 -> bbox[0]
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def _problem(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"must be one of {', '.join(TASK_TYPES)}"
    if kind == "extra_forbidden":
        return "is not a parameter of this task type"
    if kind == "missing":
        return "is required"
    msg = err.get("msg", "is invalid")
    return msg.removeprefix("Value error, ")


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"field": _field(e), "problem": _problem(e)} for e in errors]


def unavailable(exc: BaseException) -> str | None:
    """Which piece of infrastructure an exception says is down: "orchestrator" (the Prefect API),
    "database" (ours), or None for a genuine internal error."""
    import httpx
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return "orchestrator"
        if isinstance(current, httpx.HTTPStatusError) and current.response.status_code in (502, 503, 504):
            return "orchestrator"
        if isinstance(current, (OperationalError, PoolTimeout)) or (
            isinstance(current, DBAPIError) and current.connection_invalidated
        ):
            return "database"
        current = current.__cause__ or current.__context__
    return None


def is_openeo(path: str) -> bool:
    """openEO's paths answer errors in openEO's form (SPEC §8)."""
    return path.startswith(("/openeo/", "/.well-known/openeo")) or path == "/openeo"


OPENEO_CODES = {
    401: "AuthenticationRequired",
    403: "PermissionsInsufficient",
    404: "NotFound",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}


def openeo_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """openEO's error body (``{"id", "code", "message", "links"}``, errors.json's codes)."""
    import uuid

    body = {"id": uuid.uuid4().hex, "code": code, "message": message, "links": []}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if is_openeo(request.url.path):
            return openeo_error(exc.status, OPENEO_CODES.get(exc.status, "BadRequest"), exc.error, exc.headers)
        return error_response(exc.status, exc.error, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        if is_openeo(request.url.path):
            first = details[0] if details else {"field": "request", "problem": "is invalid"}
            return openeo_error(400, "ParameterInvalid", f"The request is invalid: {first['field']} {first['problem']}")
        if any(d["problem"] == "the body is not valid JSON" for d in details):
            return error_response(400, "Malformed JSON in the request body", details)
        first = details[0] if details else {"field": "body", "problem": "is invalid"}
        return error_response(400, f"Invalid request: {first['field']} {first['problem']}", details)

    for kind, status in STATUS_BY_EXCEPTION.items():

        async def _mapped(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            field = getattr(exc, "field", None) or "params"
            message = getattr(exc, "message", str(exc))
            return error_response(status, message, [{"field": field, "problem": message}])

        app.add_exception_handler(kind, _mapped)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        if is_openeo(request.url.path):  # openEO's error body on its paths (SPEC §8)
            code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
            return openeo_error(exc.status_code, code, "Resource not found." if exc.status_code == 404 else text)
        return error_response(exc.status_code, text, headers=getattr(exc, "headers", None))

    import httpx
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        down = unavailable(exc)
        if down is not None:
            log.error("%s unreachable on %s %s: %s", down, request.method, request.url.path, type(exc).__name__)
            message = f"The service is temporarily unavailable (its {down} cannot be reached); retry in a few seconds"
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            if is_openeo(request.url.path):
                return openeo_error(503, "ServiceUnavailable", message, headers)
            return error_response(503, message, headers=headers)
        log.exception("internal error on %s %s", request.method, request.url.path)
        if is_openeo(request.url.path):
            return openeo_error(500, "Internal", "Server error: the operator has the details in the gateway log")
        return error_response(500, "Internal server error; the operator has the details in the gateway log")

    # Handled here (Starlette re-raises what reaches its catch-all into the server log as well).
    for kind_ in (httpx.HTTPError, DBAPIError, PoolTimeout, Exception):
        app.add_exception_handler(kind_, _internal)
