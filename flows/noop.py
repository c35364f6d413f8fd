"""A trivial six-step flow: the orchestration floor that bench/api.py compares our tasks against."""

from __future__ import annotations

from prefect import flow, task


@task
def step(i: int) -> int:
    return i + 1


@flow(name="noop")
def noop() -> int:
    value = 0
    for _ in range(6):
        value = step(value)
    return value
