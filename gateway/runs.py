"""The only code in the gateway that talks to Prefect: create a run, read its state and result, cancel.

Deployment ids are looked up once and cached (``run_deployment`` would add a lookup per request);
requests never wait on a run: GET polls the run's state by id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelling

from eotasks import prefect_api
from eotasks.answers import stage_from_task_runs
from eotasks.settings import get_settings


@dataclass
class RunStatus:
    state_type: str  # SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLING, CANCELLED, PAUSED
    message: str | None
    stage: str
    result: Any = None


def answer_promptly() -> None:
    """The gateway answers now, or says 503 with Retry-After: Prefect's client would retry a refused
    connection for a minute (2, 4, 8 ... s) and wait 60 s for a hung server, while the client waits.
    So this process's Prefect client makes one attempt with a 10 s timeout (a run's create has its
    own millisecond retries, eotasks/prefect_api.py)."""
    import prefect.context

    root = prefect.context.GLOBAL_SETTINGS_CONTEXT
    current = root.settings
    settings = current.model_copy(
        update={
            "client": current.client.model_copy(update={"max_retries": 0}),
            "api": current.api.model_copy(update={"request_timeout": min(current.api.request_timeout, 10.0)}),
        }
    )
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(profile=root.profile, settings=settings)


PAGE = 200  # Prefect's largest page of runs


def ensure_plain(value: Any, where: str = "parameters") -> None:
    """Run parameters are data we built: JSON types only, and no key Prefect would take for a
    template or a variable (``__prefect_kind``). Anything else is a bug here, never sent."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("__prefect"):
                raise ValueError(f"{where} holds a key Prefect would interpret: {k!r}")
            ensure_plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            ensure_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ValueError(f"{where} is a {type(value).__name__}, not plain JSON")


class NotAvailable(Exception):
    """No deployment serves this task type (yet)."""


class PrefectRuns:
    def __init__(self) -> None:
        self._client: PrefectClient | None = None
        self._deployments: dict[str, uuid.UUID] = {}
        self._misses: dict[str, float] = {}
        self._create_lock: asyncio.Lock | None = None

    async def start(self) -> None:
        answer_promptly()
        self._client = get_client()
        await self._client.__aenter__()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    @property
    def client(self) -> PrefectClient:
        assert self._client is not None, "PrefectRuns.start() was not awaited"
        return self._client

    async def deployment_id(self, task_type: str) -> uuid.UUID:
        if task_type in self._deployments:
            return self._deployments[task_type]
        # A miss is re-checked at most every 5 s: the served deployments may still be starting.
        if time.monotonic() - self._misses.get(task_type, -1e9) < 5:
            raise NotAvailable(task_type)
        try:
            deployment = await self.client.read_deployment_by_name(f"{task_type}/{get_settings().deployment_suffix}")
        except ObjectNotFound:
            self._misses[task_type] = time.monotonic()
            raise NotAvailable(task_type) from None
        self._deployments[task_type] = deployment.id
        return deployment.id

    async def create(
        self,
        task_type: str,
        parameters: dict[str, Any],
        task_id: str,
        idempotency_key: str | None,
        labels: dict[str, str] | None = None,
    ) -> uuid.UUID:
        """Create the run.

        One create at a time per gateway process (each takes a few ms): concurrent creates are the
        very writes that conflict on Prefect's SQLite server, each failing the others. A conflict with
        another writer is retried within milliseconds (eotasks/prefect_api.py), which is safe because
        the run's idempotency key (the client's Idempotency-Key, else the task id) makes a repeated
        create return the same run."""
        ensure_plain(parameters)
        deployment_id = await self.deployment_id(task_type)
        if self._create_lock is None:
            self._create_lock = asyncio.Lock()
        async with self._create_lock:
            return await prefect_api.create_flow_run_from_deployment(
                self.client,
                deployment_id,
                parameters=parameters,
                tags=["eotasks", task_type],
                idempotency_key=idempotency_key or task_id,
                name=f"{task_type}-{task_id[:8]}",
                labels=labels,
            )

    async def status(self, flow_run_id: str, with_result: bool = True, with_stage: bool = True) -> RunStatus:
        """The run's state, its stage (from its task runs, unless not needed) and, once completed,
        its result. ObjectNotFound when Prefect no longer has the run."""
        run = await self.client.read_flow_run(uuid.UUID(flow_run_id))
        state = run.state
        state_type = state.type.value if state else "PENDING"
        stage = "authentication"
        if with_stage and state_type not in ("SCHEDULED", "PENDING"):
            task_runs = await self.client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                sort=TaskRunSort.EXPECTED_START_TIME_DESC,
                limit=50,
            )
            stage = stage_from_task_runs([t.name for t in reversed(task_runs)])
        result = None
        if state_type == "COMPLETED" and with_result and state is not None:
            result = await state.aresult()
        return RunStatus(state_type, state.message if state else None, stage, result)

    async def states(self, flow_run_ids: list[str]) -> dict[str, str]:
        """State types by run id, a page of Prefect's at a time (its API answers 200 runs at most)."""
        out: dict[str, str] = {}
        for start in range(0, len(flow_run_ids), PAGE):
            ids = [uuid.UUID(i) for i in flow_run_ids[start : start + PAGE]]
            runs = await self.client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
            out.update({str(r.id): (r.state.type.value if r.state else "PENDING") for r in runs})
        return out

    async def cancel_quietly(self, flow_run_id: str) -> None:
        """Cancel an orphan run (its task could not be recorded); a failure is only logged."""
        import logging

        try:
            await self.client.set_flow_run_state(
                uuid.UUID(flow_run_id), Cancelling(message="Its task could not be recorded"), force=True
            )
        except Exception as exc:
            logging.getLogger("eotasks.gateway").error("could not cancel orphan flow run %s: %s", flow_run_id, exc)

    async def cancel(self, flow_run_id: str) -> None:
        await self.client.set_flow_run_state(uuid.UUID(flow_run_id), Cancelling(message="Cancelled by the client"))

    async def logs(self, flow_run_id: str, limit: int = 1000, min_level: int = 0) -> list[dict[str, Any]]:
        """The run's log lines (and its task runs'), oldest first, at ``min_level`` or above: a page
        of Prefect's (200 lines) at a time, up to ``limit``."""
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel
        from prefect.client.schemas.sorting import LogSort

        wanted = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]), level=LogFilterLevel(ge_=min_level))
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            page = await self.client.read_logs(
                log_filter=wanted, limit=min(PAGE, limit - len(out)), offset=len(out), sort=LogSort.TIMESTAMP_ASC
            )
            out += [
                {"id": str(line.id), "level": line.level, "message": line.message, "time": line.timestamp.isoformat()}
                for line in page
            ]
            if len(page) < PAGE:
                break
        return out
