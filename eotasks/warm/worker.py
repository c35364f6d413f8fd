"""``eotasks-warm``: a Prefect worker type that runs each flow run in a child of a warm forkserver.

    prefect worker start --pool eotasks --type eotasks-warm --install-policy never

Registered through the ``prefect.collections`` entry point, so Prefect's own CLI finds it. It uses
the ``process`` job template (same variables: env, working_dir, command, stream_output), so a pool
can be switched between ``process`` and ``eotasks-warm`` with no other change.

What differs from Prefect's process worker, and why:
- Each run starts in a child forked from a forkserver that has already imported Prefect, our flows
  and the raster stack (``eotasks.warm.child``): milliseconds and almost no CPU, instead of one or
  two fresh interpreters importing all of it again. One child per run, exiting after it, so a crash
  still costs one run and never the worker.
- It learns of a new run at once from Prefect's event stream (the server emits
  ``prefect.flow-run.Scheduled`` with the run's work pool as a related resource), and when a run
  ends and frees a slot; a short poll stays as the fallback.
- One ``FlowRunExecutorContext`` (client, control channel, cancellation observer) serves all runs
  instead of one per run.
- Flow heartbeats are sent by the worker while the child lives, so sync flows do not wait for the
  engine's heartbeat thread at exit.

This module is imported by every process that loads Prefect collections: keep its imports light.
"""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from prefect.workers.base import BaseWorker, BaseWorkerResult
from prefect.workers.process import ProcessJobConfiguration, ProcessVariables

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._flow_run_executor import FlowRunExecutorContext

WORKER_TYPE = "eotasks-warm"


class WarmWorkerResult(BaseWorkerResult):
    """The exit of one flow-run child."""


def _poll_seconds() -> float:
    from eotasks.settings import get_settings

    return get_settings().worker_poll_s


class WarmProcessWorker(BaseWorker[ProcessJobConfiguration, ProcessVariables, WarmWorkerResult]):
    type = WORKER_TYPE
    job_configuration = ProcessJobConfiguration
    job_configuration_variables = ProcessVariables
    _description = "Runs each flow run in a child of a preloaded forkserver: process isolation without the start-up cost."
    _display_name = "eotasks warm process"
    _documentation_url = "https://github.com/eotasks/eotasks#the-warm-worker"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forkserver_pid: int | None = None
        self._executor_context: FlowRunExecutorContext | None = None
        self._wake: anyio.Event | None = None
        self._loops: anyio.abc.TaskGroup | None = None

    async def setup(self) -> None:
        from eotasks.warm.forkserver import ensure_forkserver

        # Pay the imports once, before any thread or client of ours exists (the forkserver is a
        # separate clean process either way; it snapshots this process's final environment).
        self.forkserver_pid = await anyio.to_thread.run_sync(ensure_forkserver)
        self._logger.info("warm forkserver ready (pid %s)", self.forkserver_pid)
        await super().setup()
        from prefect.runner._flow_run_executor import FlowRunExecutorContext

        self._executor_context = await self._exit_stack.enter_async_context(FlowRunExecutorContext())
        self._wake = anyio.Event()
        self._loops = await self._exit_stack.enter_async_context(anyio.create_task_group())
        self._loops.start_soon(self._submit_when_woken)
        self._loops.start_soon(self._wake_on_scheduled_runs)

    async def teardown(self, *exc_info: Any) -> None:
        if self._loops is not None:
            self._loops.cancel_scope.cancel()
        await super().teardown(*exc_info)
        self._loops = None
        self._executor_context = None

    # -- pick-up: events first, a short poll as the fallback ---------------------------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _submit_when_woken(self) -> None:
        """Ask for scheduled runs when woken (a Scheduled event, a freed slot) or every few seconds.

        Wake-ups coalesce: a burst of 50 events costs a handful of queries, not 50."""
        while True:
            wake = self._wake = self._wake or anyio.Event()
            with anyio.move_on_after(_poll_seconds()):
                await wake.wait()
            self._wake = anyio.Event()
            try:
                await self.get_and_submit_flow_runs()
            except Exception as exc:  # the stock 10 s loop also keeps going; this one logs and retries
                self._logger.warning("could not query scheduled flow runs: %s", exc)
                await anyio.sleep(1)

    async def _wake_on_scheduled_runs(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter

        backoff = 1.0
        while True:
            if self._work_pool is None:
                await anyio.sleep(0.5)
                continue
            flt = EventFilter(
                event=EventNameFilter(name=["prefect.flow-run.Scheduled"]),
                any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{self._work_pool.id}"]),
            )
            try:
                async with get_events_subscriber(filter=flt, reconnection_attempts=3) as subscriber:
                    backoff = 1.0
                    self.wake()  # runs scheduled while we were not listening
                    async for _event in subscriber:
                        self.wake()
            except Exception as exc:
                self._logger.debug("event stream unavailable (%s); polling every %.0f s meanwhile", exc, _poll_seconds())
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    # -- running one flow run ------------------------------------------------------------------------

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[str] | None = None,  # type: ignore[override]  # started with "host:pid"
    ) -> WarmWorkerResult:
        import tempfile

        from prefect.flows import load_flow_from_flow_run
        from prefect.runner._flow_run_executor import FlowRunExecutionResult

        from eotasks.warm.forkserver import ForkserverStarter

        if task_status is None:
            task_status = anyio.TASK_STATUS_IGNORED
        assert self._executor_context is not None, "the worker is not set up"
        ctx = self._executor_context
        execution: FlowRunExecutionResult | None = None
        with tempfile.TemporaryDirectory(suffix="prefect") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            cwd = Path(configuration.working_dir or tmp).resolve()
            starter = ForkserverStarter(env=configuration.env, cwd=cwd, control_channel=ctx.control_channel)
            executor = ctx.create_executor(flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False)

            async def execute(*, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED) -> None:
                nonlocal execution
                execution = await executor.submit(task_status=task_status)

            try:
                async with anyio.create_task_group() as tg:
                    handle = await tg.start(execute)
                    if handle is None or handle.pid is None:
                        raise RuntimeError("the flow-run child has no pid")
                    task_status.started(f"{socket.gethostname()}:{handle.pid}")
            finally:
                self.wake()  # a slot is free: take the next scheduled run now, not at the next poll
        if execution is None or execution.status_code is None:
            raise RuntimeError("the flow-run child did not start")
        # As Prefect's process worker: the executor has already proposed Crashed (and run the crashed
        # hooks) for a child that died without reporting; the base worker logs the code.
        return WarmWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))

    async def kill_infrastructure(
        self, infrastructure_pid: str, configuration: ProcessJobConfiguration, grace_seconds: int = 30
    ) -> None:
        """Stop a run's child (runs cancelled before they reported; see Prefect's base worker)."""
        from prefect.exceptions import InfrastructureNotAvailable, InfrastructureNotFound

        from eotasks.warm.forkserver import kill_pid

        host, _, pid = infrastructure_pid.rpartition(":")
        if host and host != socket.gethostname():
            raise InfrastructureNotAvailable(
                f"flow run child {infrastructure_pid} is on another host than this worker ({socket.gethostname()})"
            )
        if not await anyio.to_thread.run_sync(kill_pid, int(pid), grace_seconds):
            raise InfrastructureNotFound(f"no flow run child with pid {pid}")

    async def _give_worker_labels_to_flow_run(self, flow_run_id: Any) -> None:
        """Labels are for the UI: set them beside the run, never in its way.

        The base worker awaits this before starting the run, and on a busy SQLite server a write
        conflict there ("database is locked", 503) cost seconds of client back-off, or crashed the
        run once the retries ran out (PREFECT-NOTES: 5 of 50 stock runs). Here it runs in the
        background with millisecond retries (eotasks/prefect_api.py), and a failure is a warning."""
        if self._loops is None:
            return
        self._loops.start_soon(self._label_flow_run, flow_run_id)

    async def _label_flow_run(self, flow_run_id: Any) -> None:
        from eotasks import prefect_api

        labels = {"prefect.worker.name": self.name, "prefect.worker.type": self.type}
        if self._work_pool:
            labels.update({"prefect.work-pool.name": self._work_pool.name, "prefect.work-pool.id": str(self._work_pool.id)})
        try:
            await prefect_api.update_flow_run_labels(self.client, flow_run_id, labels)
        except Exception as exc:
            self._logger.warning("could not label flow run %s with this worker: %s", flow_run_id, exc)
