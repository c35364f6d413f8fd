"""What every task-type flow shares: failing with a message a user can act on, and callbacks."""

from __future__ import annotations

import re
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from prefect.states import Failed, State

from eotasks.answers import TASK_TYPE_BY_STATE, ended_answer, failure_message, stage_from_task_runs
from eotasks import callbacks
from eotasks.db import TaskRecord, session
from eotasks.errors import UserError
from eotasks.store import get_store

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_name(text: str, limit: int = 120) -> str:
    """Characters unsafe in file names become '_' (SPEC: name from name_alias or bm_type)."""
    return _UNSAFE.sub("_", text).strip("._")[:limit] or "result"


def fail(exc: BaseException) -> State:
    """A Failed state whose message is what the client is told.

    A run over its time limit is not ours to report: Prefect's engine marks it TimedOut."""
    from prefect.flow_engine import FlowRunTimeoutError

    if isinstance(exc, FlowRunTimeoutError):
        raise exc
    logger = get_run_logger()
    if isinstance(exc, UserError):
        logger.error("task failed: %s", exc.message)
        return Failed(message=exc.message)
    logger.exception("internal error", exc_info=exc)
    return Failed(message=failure_message("FAILED", None))


def _stage(flow_run_id: Any) -> str:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=50,
        )
    return stage_from_task_runs([r.name for r in reversed(runs)])


def callback_hook(flow: Any, flow_run: Any, state: State) -> None:
    """on_completion / on_failure / on_crashed / on_cancellation: put the final answer in the callback
    outbox if the client asked for one (the gateway's sender POSTs it; this run does not wait)."""
    task_id = (flow_run.parameters or {}).get("task_id")
    if not task_id:
        return
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is None or not record.callback_url:
        return
    if TASK_TYPE_BY_STATE.get(state.type.value) == "finished":
        body: dict[str, Any] = {"task_id": task_id, "task_type": "finished"}
        result = state.result(raise_on_failure=False)
        if isinstance(result, dict) and result.get("files"):
            body["result_url"] = get_store().download_url(result["files"][0])
        elif isinstance(result, dict):
            body.update(result)
    else:
        body = ended_answer(task_id, state.type.value, state.message, _stage(flow_run.id))
    callbacks.enqueue(task_id, record.callback_url, body)


def time_series_runner() -> Any:
    """Per-scene fan-out: threads by default (rasterio and numpy release the GIL); a Dask cluster when
    EOTASKS_DASK_ADDRESS names a scheduler (tcp://host:8786), or an in-process one for "local"."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from eotasks.settings import get_settings

    settings = get_settings()
    if not settings.dask_address:
        return ThreadPoolTaskRunner(max_workers=settings.mt_stats_workers)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address == "local":
        return DaskTaskRunner(cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": settings.mt_stats_workers})
    return DaskTaskRunner(address=settings.dask_address)


HOOKS = dict(on_completion=[callback_hook], on_failure=[callback_hook], on_crashed=[callback_hook], on_cancellation=[callback_hook])


def flow_timeout() -> int:
    """SPEC's task_timeout (EOTASKS_TASK_TIMEOUT_S), read when a flow module is imported, i.e. when
    a worker starts: a run over it is stopped and ends TimedOut."""
    from eotasks.settings import get_settings

    return get_settings().task_timeout_s


def run_options() -> dict[str, Any]:
    """What every task-type flow declares at its decorator: the callback hooks and the time limit."""
    return dict(HOOKS, timeout_seconds=flow_timeout())
