"""One child per flow run, forked from a preloaded forkserver, watched like Prefect's own starters.

``ForkserverStarter`` follows Prefect's ``ProcessStarter`` contract (``runner/_flow_run_executor.py``),
so Prefect's ``FlowRunExecutor`` does everything else exactly as for a process worker: the
control channel and the cancel intent, SIGTERM then SIGKILL on cancel, Crashed with the exit code
when the child dies, and the crashed/cancellation hooks.

The forkserver is the standard library's (``multiprocessing`` ``forkserver`` start method): a clean
single-threaded process started from the worker's final environment, which imports
``eotasks.warm.child`` once and forks a child per request. The child's exit status comes back
through the forkserver (``-9`` for SIGKILL), and the child is the forkserver's, not the worker's.
"""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.forkserver
import os
import signal
from multiprocessing import popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

PRELOAD = ["eotasks.warm.child"]
_CONTEXT = multiprocessing.get_context("forkserver")


def ensure_forkserver() -> int:
    """Start the forkserver (once per process) and return its pid.

    It snapshots the environment and imports the preload now, so call it after the environment is
    final. Python's forkserver skips a preload that fails to import without a word, so the import is
    checked here first: a worker must not silently run cold."""
    import importlib.util

    for name in PRELOAD:
        if importlib.util.find_spec(name) is None:
            raise RuntimeError(f"the warm preload {name!r} cannot be imported from {os.getcwd()}")
    _CONTEXT.set_forkserver_preload(PRELOAD)
    server = multiprocessing.forkserver._forkserver
    server.ensure_running()
    # Private, pinned by tests/test_warm_contract.py (as are the forkserver internals below).
    return server._forkserver_pid  # type: ignore[attr-defined]


class _Popen(popen_forkserver.Popen):
    """The standard forkserver launch without re-running the parent's ``__main__`` in the child.

    Stock ``multiprocessing`` re-imports the parent's main script in every child; for a worker
    started as the ``prefect`` console script that is Prefect's whole CLI, per run."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        popen_forkserver.set_spawning_popen(self)  # type: ignore[attr-defined]
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            popen_forkserver.set_spawning_popen(None)  # type: ignore[attr-defined]
        self.sentinel, w = multiprocessing.forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = multiprocessing.forkserver.read_signed(self.sentinel)


class WarmChild(ForkServerProcess):
    """A flow-run child: ``pid`` and ``exitcode`` are what Prefect's ``ProcessHandle`` reads."""

    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:  # noqa: N802 (multiprocessing's name)
        return _Popen(process_obj)


class ForkserverStarter:
    """Prefect's ``ProcessStarter`` contract: signal the handle, then block until the child exits."""

    def __init__(
        self, *, env: dict[str, str | None], cwd: Path, control_channel: ControlChannel | None, entrypoint: str | None = None
    ) -> None:
        self._env = env
        self._cwd = cwd
        self._control_channel = control_channel
        self._entrypoint = entrypoint

    def child_environment(self, flow_run: FlowRun, control_env: dict[str, str]) -> dict[str, str]:
        """What ``EngineCommandStarter`` gives ``python -m prefect.engine``, for the forked child."""
        env: dict[str, str | None] = {**os.environ, **self._env}
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        env.update(
            {
                "PREFECT__FLOW_RUN_ID": str(flow_run.id),
                # The worker runs crashed and cancellation hooks (it sees the exit), as for process workers.
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                **control_env,
            }
        )
        if self._entrypoint:
            env["PREFECT__FLOW_ENTRYPOINT"] = self._entrypoint
        return {k: v for k, v in sanitize_subprocess_env(env).items() if v is not None}

    async def start(
        self, flow_run: FlowRun, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        control_env: dict[str, str] = {}
        registered = False
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
                control_env = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
            except RuntimeError:
                pass  # no loopback listener: cancellation falls back to signals only, as in Prefect
        from eotasks.warm.child import run_flow_run

        child = WarmChild(
            target=run_flow_run,
            args=(self.child_environment(flow_run, control_env), str(self._cwd), str(flow_run.id)),
            name=f"flow-run-{flow_run.id}",
        )
        try:
            # Sends the request and reads the pid back from the forkserver: milliseconds.
            child.start()
        except BaseException:
            if registered and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
        task_status.started(ProcessHandle(child))  # type: ignore[arg-type]  # a forkserver Process reads the same
        await anyio.wait_readable(child.sentinel)
        child.join()  # reads the exit status the forkserver wrote; does not block


def kill_pid(pid: int, grace_seconds: float) -> bool:
    """SIGTERM, then SIGKILL after the grace period. False when no such process exists."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    import time

    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
