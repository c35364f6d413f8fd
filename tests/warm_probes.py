"""Flows that misbehave on purpose, for the warm worker's tests: sleep until cancelled, die, overrun.

Each hook writes a marker file named after the run, so a test can see that the hook fired (hooks of
crashed and cancelled runs run in the worker, which loads these flows by module path)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from prefect import flow, runtime


def _marker(name: str):
    def hook(flow, flow_run, state) -> None:
        folder = Path(flow_run.parameters["marker_dir"])
        (folder / f"{name}-{flow_run.id}").write_text(f"{state.type.value} {state.message or ''}")

    return hook


@flow(name="probe-sleeper", on_cancellation=[_marker("cancelled")])
def sleeper(marker_dir: str, seconds: float = 120) -> None:
    Path(marker_dir, f"pid-{runtime.flow_run.id}").write_text(str(os.getpid()))
    time.sleep(seconds)


@flow(name="probe-suicide", on_crashed=[_marker("crashed")])
def suicide(marker_dir: str, how: str) -> None:
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


@flow(name="probe-overrun", timeout_seconds=2)
def overrun(marker_dir: str) -> None:
    time.sleep(30)


@flow(name="probe-late-import")
def late_import(marker_dir: str) -> None:
    import tests.warm_late_module  # noqa: F401  (nothing preloads it: the child reports it)
