"""What a client sees for a run: the mapping from a Prefect run's state to SPEC §1's answers.

Shared by the gateway (GET) and the flows' callback hook, so both always say the same thing.
Takes plain values (state type name, message, result, stage), never Prefect objects.
"""

from __future__ import annotations

from typing import Any

STAGES = ("authentication", "scene_lookup", "crop", "index", "render", "stats", "publish")

TASK_TYPE_BY_STATE = {
    "SCHEDULED": "created",
    "PENDING": "created",
    "RUNNING": "started",
    "PAUSED": "started",
    "CANCELLING": "cancelled",
    "CANCELLED": "cancelled",
    "COMPLETED": "finished",
    "FAILED": "failed",
    "CRASHED": "failed",
}


def stage_from_task_runs(names: list[str]) -> str:
    """The current (or failed) stage: the latest task run that is a stage; runs are oldest first."""
    for name in reversed(names):
        stage = name.split("-", 1)[0]  # per-scene runs are named "stats-<view_id>"
        if stage in STAGES:
            return stage
    return "authentication"


def ended_answer(task_id: str, state_type: str, message: str | None, stage: str) -> dict[str, Any]:
    """SPEC §1's answer for a run that failed or was cancelled, from its Prefect state."""
    return failed_answer(task_id, TASK_TYPE_BY_STATE.get(state_type, "failed"), failure_message(state_type, message), stage)


def failed_answer(task_id: str, task_type: str, error: str | None, stage: str) -> dict[str, Any]:
    """SPEC §1's answer for a task that failed or was cancelled (GET, DELETE and callbacks alike)."""
    if task_type == "cancelled" and not error:
        error = "The task was cancelled"
    return {
        "task_type": task_type,
        "status": task_type,
        "stage": stage,
        "error": error or failure_message("FAILED", None),
        "task_id": task_id,
    }


def failure_message(state_type: str, message: str | None) -> str:
    if state_type == "CRASHED":
        return "The task stopped unexpectedly (its worker process crashed); please submit it again"
    if state_type in ("CANCELLED", "CANCELLING"):
        return "The task was cancelled"
    if message and message.startswith("Flow run exceeded timeout of"):
        limit = message.removeprefix("Flow run exceeded timeout of").strip().split(" ")[0]
        return f"The task did not finish within its time limit of {limit} s and was stopped"
    if not message or message.startswith(("Flow run encountered an exception", "Flow run timed out")):
        return "The task failed because of an internal error; please submit it again or contact the operator"
    return message
