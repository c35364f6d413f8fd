"""The HTTP API: SPEC §1 (tasks), §4 (search), croppers and downloads, one router each.

Thin by design: no rasters here. Requests are validated by the models of ``eotasks.models`` (off
the event loop, ``gateway.body``); Prefect is reached only through ``gateway.runs``, the database only
through ``gateway.records``; errors become SPEC's body in ``gateway.errors``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from eotasks.callbacks import sender_loop
from eotasks.db import init_db
from eotasks.models import SearchRequest, TaskRequest
from eotasks.redact import install_access_log_redaction
from eotasks.settings import get_settings
from gateway import errors
from gateway.auth import new_rate_limit
from gateway.body import BodyLimit
from gateway.routes import croppers, downloads, openeo, search, tasks
from gateway.runs import PrefectRuns


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(init_db)
    await app.state.runs.start()
    await run_in_threadpool(settle_heap)
    sender = asyncio.create_task(sender_loop())  # drains the callback outbox
    try:
        yield
    finally:
        sender.cancel()
        await app.state.runs.stop()


def settle_heap() -> None:
    """Import what the first submission would import, then move everything alive at startup out of
    the garbage collector's view: a full collection then walks only what requests allocated, not the
    whole of Prefect, FastAPI and GDAL's bindings (a pause of the whole process that every client
    would feel while a large body is validated)."""
    import gc

    import eotasks.budget
    import eotasks.catalog.scenes  # noqa: F401
    from eotasks.raster.indices import spyndex_catalogue, spyndex_constants
    from eotasks.raster.render import colormap_names

    colormap_names()  # a colormap is checked against Matplotlib's (whose import takes a second)
    spyndex_catalogue()  # every expression of every request is resolved against it
    spyndex_constants()
    gc.collect()
    gc.freeze()


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the schemas of the bodies the routes validate themselves (off the
    event loop) added to its components, so every $ref resolves."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for adapter in (TypeAdapter(TaskRequest), TypeAdapter(SearchRequest), croppers.FEATURE):
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        if "title" in schema and "properties" in schema:
            components.setdefault(schema["title"], schema)
    # Invalid input is a 400 with SPEC's body (gateway.errors), never FastAPI's 422.
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    # The key, as the query parameter of the reference API or as a header: "Authorize" in the page
    # then sends it with every "Try it out" (both are accepted: gateway.auth).
    doc["components"]["securitySchemes"] = {
        "api_key": {"type": "apiKey", "in": "query", "name": "api_key"},
        "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    for path_name, path in doc.get("paths", {}).items():
        if path_name.startswith("/api") and not path_name.startswith("/api/download"):  # a download is signed
            for operation in path.values():
                operation["security"] = [{"api_key": []}, {"x-api-key": []}]
    app.openapi_schema = doc
    return doc


def create_app(runs: PrefectRuns | None = None) -> FastAPI:
    settings = get_settings()
    install_access_log_redaction()  # ?api_key= and download signatures never reach the log
    # The API's pages (/docs, /redoc) from assets in the package: they work with no internet.
    app = FastAPIOffline(
        title="eotasks",
        version="0.1.0",
        lifespan=lifespan,
        # No badge from validator.swagger.io: the page asks nothing of any other host.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        description="Crop satellite scenes by an AOI, compute spectral indices, render pictures and time-series statistics.",
    )
    app.state.runs = runs or PrefectRuns()
    app.state.rate_limit = new_rate_limit()
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    for prefix in ("/api", "/api/gdw/api"):
        app.include_router(tasks.router, prefix=prefix)
    app.include_router(croppers.router)
    app.include_router(search.router)
    app.include_router(downloads.router)
    openeo.install(app)  # SPEC §8, on the same keys, submissions, records and store

    @app.get("/health", tags=["ops"], include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


app = create_app()
