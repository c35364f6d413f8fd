"""Retry policy shared by the I/O steps: back off on I/O trouble, never retry a client's mistake."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from eotasks.errors import UserError
from eotasks.settings import get_settings


def not_a_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn: retry unless the failure is the client's (bad id, AOI outside the scene)."""
    return not isinstance(state.data, UserError)


def record_stage_of(task: Any, task_run: Any, state: Any) -> None:
    """on_running, and on_failure after the last retry: the step this task's run is at, or failed at
    (eotasks.outcomes: the gateway answers a task's stage from it, and waits on it)."""
    try:
        from prefect.runtime import flow_run

        from eotasks.outcomes import record_stage

        task_id = (flow_run.parameters or {}).get("task_id")
        if task_id:
            record_stage(task_id, str(task_run.name).split("-", 1)[0])
    except Exception:  # the answer's stage is a courtesy: never fail a run over it
        pass


def io_step(**overrides: Any) -> dict[str, Any]:
    """Task options for a step that reads or writes storage."""
    options: dict[str, Any] = dict(
        retries=get_settings().io_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=1),
        retry_jitter_factor=0.5,
        retry_condition_fn=not_a_user_error,
        # Steps hand numpy arrays to each other in memory: never hash or persist them.
        cache_policy=NO_CACHE,
        persist_result=False,
        on_running=[record_stage_of],
        on_failure=[record_stage_of],
    )
    options.update(overrides)
    return options


def compute_step(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        cache_policy=NO_CACHE, persist_result=False, on_running=[record_stage_of], on_failure=[record_stage_of]
    )
    options.update(overrides)
    return options
