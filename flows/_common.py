"""What every task-type flow shares: one place that turns an exception into the client's failure,
the callback hooks, the time limit, and the task runner of the time series."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from prefect.states import Failed, State

from eotasks import callbacks
from eotasks.answers import TASK_TYPE_BY_STATE, failed_answer, failure_message, stage_from_task_runs
from eotasks.db import TaskRecord, session
from eotasks.errors import UserError
from eotasks.outcomes import record_ending
from eotasks.store import get_store

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_name(text: str, limit: int = 120) -> str:
    """Characters unsafe in file names become '_' (SPEC: name from name_alias or bm_type)."""
    return _UNSAFE.sub("_", text).strip("._")[:limit] or "result"


def output_name(scene: Any, params: Any, extension: str) -> str:
    """``<scene_id>_<name_alias or bm_type>.<extension>`` (SPEC §3)."""
    return f"{scene.scene_id}_{safe_name(params.name_alias or params.bm_type)}.{extension}"


def programs_for(scene: Any, bm_type: str) -> list[Any]:
    """``bm_type`` compiled for the scene's sensor (validated at submission; a pure function)."""
    from eotasks.raster.indices import compile_expressions
    from eotasks.sensors import SENSORS
    from eotasks.settings import get_settings

    return compile_expressions(bm_type, SENSORS[scene.sensor], get_settings().max_expression_chars)


def fail(exc: BaseException) -> State:
    """A Failed state whose message is what the client is told.

    A run over its time limit is not ours to report: Prefect's engine marks it TimedOut."""
    from prefect.flow_engine import FlowRunTimeoutError

    if isinstance(exc, FlowRunTimeoutError):
        raise exc
    logger = get_run_logger()
    if isinstance(exc, UserError):
        logger.warning("task failed: %s", exc.message)  # the client's to fix (UserErrorsInOneLine)
        return Failed(message=exc.message)
    logger.exception("internal error", exc_info=exc)
    return Failed(message=failure_message("FAILED", None))


def _stage(flow_run_id: Any) -> str:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=50,
        )
    return stage_from_task_runs([r.name for r in reversed(runs)])


def ended_hook(flow: Any, flow_run: Any, state: State) -> None:
    """on_completion / on_failure / on_crashed / on_cancellation: record how the task ended in our
    database (the gateway answers from it) and, if the client asked for one, put the final answer in
    the callback outbox (the gateway's sender POSTs it; this run does not wait)."""
    task_id = (flow_run.parameters or {}).get("task_id")
    if not task_id:
        return
    status = TASK_TYPE_BY_STATE.get(state.type.value, "failed")
    inline: dict[str, Any] | None = None
    if status == "finished":
        result = state.result(raise_on_failure=False)
        if isinstance(result, dict) and result.get("files"):
            record_ending(task_id, "finished", result={"files": result["files"]})
        else:  # a statistics task's answer, published beside its run as mt_stats.json
            inline = result if isinstance(result, dict) else None
            record_ending(task_id, "finished", result={"answer": f"{task_id}/mt_stats.json"})
    else:
        with session() as s:
            record = s.get(TaskRecord, task_id)
        stage = (record.stage if record is not None and record.stage and status == "failed" else None) or _stage(flow_run.id)
        record_ending(task_id, status, error=failure_message(state.type.value, state.message), stage=stage)
    with session() as s:
        record = s.get(TaskRecord, task_id)
    if record is not None and record.callback_url:
        callbacks.enqueue(task_id, record.callback_url, callback_body(record, inline))


def callback_body(record: TaskRecord, inline: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the callback says: the ended task as GET answers it (for a download, its signed URL)."""
    if record.status == "finished":
        body: dict[str, Any] = {"task_id": record.id, "task_type": "finished"}
        files = (record.result or {}).get("files")
        if files:
            body["result_url"] = get_store().download_url(files[0])
        elif inline is not None:
            body.update(inline)
        return body
    return failed_answer(record.id, record.status or "failed", record.error, record.stage or "authentication")


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
        return DaskTaskRunner(
            cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": settings.mt_stats_workers}
        )
    return DaskTaskRunner(address=settings.dask_address)


HOOKS = dict(
    on_completion=[ended_hook],
    on_failure=[ended_hook],
    on_crashed=[ended_hook],
    on_cancellation=[ended_hook],
)


def flow_timeout() -> int:
    """SPEC's task_timeout (EOTASKS_TASK_TIMEOUT_S), read when a flow module is imported, i.e. when
    a worker starts: a run over it is stopped and ends TimedOut."""
    from eotasks.settings import get_settings

    return get_settings().task_timeout_s


def run_options() -> dict[str, Any]:
    """What every task-type flow declares at its decorator: the callback hooks and the time limit."""
    return dict(HOOKS, timeout_seconds=flow_timeout())


def task_flow(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@flow`` for an API task type: its body is its steps, and whatever it raises becomes the
    client's failure here (``fail``), the one place that does it; results are persisted as JSON for
    the gateway; callback hooks and the time limit as every task type has them."""
    from prefect import flow

    def decorate(fn: Callable[..., Any]) -> Any:
        return flow(name=name, persist_result=True, result_serializer="json", **run_options(), **options)(failing_as_told(fn))

    return decorate


def failing_as_told(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A flow body whose exceptions end the run as ``fail`` says (the signature is kept for Prefect)."""
    import inspect

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return fail(exc)

    # Prefect validates parameters against the signature, whose annotations are strings in the flow
    # modules: give the wrapper that signature with the types resolved in the function's own module.
    body.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return body


class QuietBookkeeping(logging.Filter):
    """Prefect logs two lines for every hook it runs, to the run's logs on the server: for the hooks
    that only record a task's stage and ending in our database, on every step of every run, that is
    more log traffic than the runs' own lines. Their errors are still logged."""

    HOOKS = ("'record_stage_of'", "'ended_hook'")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage() if record.levelno <= logging.INFO else ""
        return not (message.startswith(("Running hook ", "Hook ")) and any(h in message for h in self.HOOKS))


_FAILED_WITH = re.compile(r"Finished in state Failed\('Task run encountered an exception (\w+): ")


def _user_error_names() -> set[str]:
    names, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class UserErrorsInOneLine(logging.Filter):
    """A step that fails on the client's input (UserError: a scene that does not exist, an AOI
    outside it) is the client's to fix, not the operator's: one WARNING line with the sentence the
    client gets, not an ERROR with the traceback of our own code."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.exceptions import FailedRun

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, FailedRun):
            # The engine's "exited with unexpected exception" for a run that ended Failed: the
            # failure was logged where it happened (``fail``), this is only the engine's own stack.
            return False
        if isinstance(exc, UserError) or self._user_error_state(record):
            record.exc_info, record.exc_text = None, None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True

    @staticmethod
    def _user_error_state(record: logging.LogRecord) -> bool:
        """A step's "Finished in state Failed('Task run encountered an exception SceneNotFound: ...')"."""
        message = record.getMessage() if record.levelno > logging.WARNING else ""
        found = _FAILED_WITH.match(message)
        return found is not None and found.group(1) in _user_error_names()


for _logger in ("prefect.task_runs", "prefect.flow_runs"):
    for _filter in (QuietBookkeeping, UserErrorsInOneLine):
        if not any(isinstance(f, _filter) for f in logging.getLogger(_logger).filters):
            logging.getLogger(_logger).addFilter(_filter())
