"""Step ``publish``: encode what still needs it, and put the result files into the result store
under the task's id."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from prefect import get_run_logger, task

from eotasks.store import get_store
from tasks._policy import io_step
from tasks.encode import scratch_dir


class Streamed(Protocol):
    """An answer written in pieces (``eotasks.stats_answer.TimeSeriesAnswer``)."""

    def chunks(self) -> Iterator[bytes]: ...


class Encodable(Protocol):
    """A result still to be encoded into a file (``tasks.encode.FloatCog``)."""

    def write_to(self, folder: Path, name: str) -> Path: ...


Content = bytes | Path | Streamed | Encodable


def publish_files(task_id: str, files: dict[str, Content]) -> tuple[list[str], int]:
    """Each file under ``<task_id>/<name>``: bytes as they are, a local file streamed (and removed
    with its scratch folder once stored), a streamed answer piece by piece, an encodable one encoded
    into a scratch folder first. The keys and the bytes stored."""
    store = get_store()
    keys, size, scratch = [], 0, []
    for name, content in files.items():
        key = f"{task_id}/{name}"
        if isinstance(content, bytes):
            keys.append(store.put(key, content))
            size += len(content)
            continue
        if hasattr(content, "write_to"):
            folder = scratch_dir()
            scratch.append(folder)
            content = content.write_to(folder, name)
        if isinstance(content, Path):
            keys.append(store.put_file(key, content))
            size += content.stat().st_size
            if content.parent.name.startswith("eotasks-out-"):
                scratch.append(content.parent)
        else:
            keys.append(store.put_chunks(key, content.chunks()))
            size += int(getattr(content, "size", 0))
    for folder in scratch:  # only once every file is stored: a retry encodes and finds them all again
        shutil.rmtree(folder, ignore_errors=True)
    return keys, size


@task(name="publish", task_run_name="publish", timeout_seconds=900, **io_step())
def publish(task_id: str, files: dict[str, Content]) -> list[str]:
    keys, size = publish_files(task_id, files)
    get_run_logger().info("published %s (%d bytes)", ", ".join(keys), size)
    return keys
