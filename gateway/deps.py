"""The gateway's dependencies, as ``Annotated`` types a route declares (after the FastAPI template's
``api/deps.py``): the caller's key (authenticated and rate limited), Prefect, the result store."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from eotasks.store import ResultStore, get_store
from gateway.auth import Caller, require_key
from gateway.runs import PrefectRuns

STORE_TTL_S = 30.0


async def runs_of(request: Request) -> PrefectRuns:  # async: a plain def would cost a thread hop
    return request.app.state.runs


async def store_of(request: Request) -> ResultStore:
    """The result store, re-read every ``STORE_TTL_S`` so a block edited in the Prefect UI takes
    effect. Loaded in a worker thread: a block's ``load`` is a coroutine inside an event loop."""
    cached = getattr(request.app.state, "store", None)
    now = time.monotonic()
    if cached is None or now - cached[1] > STORE_TTL_S:
        cached = (await run_in_threadpool(get_store), now)
        request.app.state.store = cached
    return cached[0]


Key = Annotated[Caller, Depends(require_key)]
Runs = Annotated[PrefectRuns, Depends(runs_of)]
Store = Annotated[ResultStore, Depends(store_of)]
