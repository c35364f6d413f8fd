"""A trivial six-step flow: the orchestration floor that bench/api.py compares our tasks against.

It also says where it ran (one log line), which the tests use to prove the warm path: inside a warm
child, ``EOTASKS_WARM_CHILD`` is set by the preloaded forkserver child and the parent is the forkserver.
"""

from __future__ import annotations

import os
import sys

from prefect import flow, task


@task
def step(i: int) -> int:
    return i + 1


@flow(name="noop", log_prints=True)
def noop() -> int:
    value = 0
    for _ in range(6):
        value = step(value)
    warm = os.environ.get("EOTASKS_WARM_CHILD", "")
    print(
        f"execution: pid={os.getpid()} ppid={os.getppid()} warm={warm or '-'} "
        f"preloaded={'eotasks.warm.child' in sys.modules and 'rasterio' in sys.modules}"
    )
    return value
