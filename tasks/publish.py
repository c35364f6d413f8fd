"""Step ``publish``: put result files into the result store under the task's id."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from prefect import get_run_logger, task

from eotasks.store import get_store
from tasks._policy import io_step


class Streamed(Protocol):
    """An answer written in pieces (``eotasks.stats_answer.TimeSeriesAnswer``)."""

    def chunks(self) -> Iterator[bytes]: ...


Content = bytes | Path | Streamed


def publish_files(task_id: str, files: dict[str, Content]) -> list[str]:
    """Each file under ``<task_id>/<name>``: bytes as they are, a local file streamed (and removed
    with its scratch folder once stored), a streamed answer piece by piece."""
    store = get_store()
    keys = []
    for name, content in files.items():
        key = f"{task_id}/{name}"
        if isinstance(content, bytes):
            keys.append(store.put(key, content))
        elif isinstance(content, Path):
            keys.append(store.put_file(key, content))
        else:
            keys.append(store.put_chunks(key, content.chunks()))
    for content in files.values():  # only once every file is stored: a retry finds them all again
        if isinstance(content, Path) and content.parent.name.startswith("eotasks-out-"):
            shutil.rmtree(content.parent, ignore_errors=True)
    return keys


def size_of(content: Content) -> int:
    if isinstance(content, bytes):
        return len(content)
    if isinstance(content, Path):
        return content.stat().st_size
    return int(getattr(content, "size", 0))


@task(name="publish", task_run_name="publish", timeout_seconds=600, **io_step())
def publish(task_id: str, files: dict[str, Content]) -> list[str]:
    sizes = sum(size_of(c) for c in files.values())
    keys = publish_files(task_id, files)
    get_run_logger().info("published %s (%d bytes)", ", ".join(keys), sizes)
    return keys
