"""Step ``publish``: put result files into the result store under the task's id."""

from __future__ import annotations

from prefect import get_run_logger, task

from eotasks.store import get_store
from tasks._policy import io_step


def publish_files(task_id: str, files: dict[str, bytes]) -> list[str]:
    store = get_store()
    return [store.put(f"{task_id}/{name}", data) for name, data in files.items()]


@task(name="publish", task_run_name="publish", timeout_seconds=600, **io_step())
def publish(task_id: str, files: dict[str, bytes]) -> list[str]:
    keys = publish_files(task_id, files)
    get_run_logger().info("published %s (%d bytes)", ", ".join(keys), sum(map(len, files.values())))
    return keys
