"""Prefect API writes that retry a write conflict in milliseconds instead of seconds.

Prefect's server on SQLite (the embedded default) answers 503 at once when two writes race: a
transaction that read first cannot be upgraded to a write after another writer committed ("database
is locked", SQLITE_BUSY_SNAPSHOT; the server's own comment in ``server/database/configurations.py``).
Two requests hit it in practice: creating a run from a deployment, and labelling a run. Prefect's
client answers a 503 by sleeping 2, 4, 8 ... s, and sleeps once more even with retries set to 0
(``client/base.py`` ``_send_with_retry``), which made a small task wait seconds under any
concurrency. These calls go through the same HTTP client (base URL, auth header) but skip that
loop, and retry by themselves after 10 ms, doubling to 1 s, with jitter. Only idempotent requests
come here: a create carries an idempotency key, and setting labels twice sets them once.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import UUID

import httpx
from prefect.client.base import PrefectResponse
from prefect.client.orchestration import PrefectClient

ATTEMPTS = 12  # 10 ms doubling to 1 s: about 4 s of waiting in all, as long as Prefect's first two retries


async def request(client: PrefectClient, method: str, path: str, json: Any = None, attempts: int = ATTEMPTS) -> httpx.Response:
    http = client._client  # Prefect's httpx client: its base URL, headers and auth, without its retry loop
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            response = await httpx.AsyncClient.send(http, http.build_request(method, path, json=json))
        except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            if last:
                raise
        else:
            if response.status_code != 503 or last:
                return PrefectResponse.from_httpx_response(response).raise_for_status()
        await asyncio.sleep(random.uniform(0.5, 1.5) * min(0.01 * 2**attempt, 1.0))
    raise AssertionError("unreachable")


async def create_flow_run_from_deployment(
    client: PrefectClient,
    deployment_id: UUID,
    *,
    parameters: dict[str, Any],
    tags: list[str],
    idempotency_key: str,
    name: str,
    labels: dict[str, str] | None = None,
) -> UUID:
    """``PrefectClient.create_flow_run_from_deployment``'s request (a Scheduled run), retried fast."""
    from prefect.client.schemas.actions import DeploymentFlowRunCreate
    from prefect.states import Scheduled, to_state_create

    body = DeploymentFlowRunCreate(
        parameters=parameters,
        state=to_state_create(Scheduled()),
        tags=tags,
        name=name,
        idempotency_key=idempotency_key,
        labels=labels or {},
    )
    response = await request(
        client, "POST", f"/deployments/{deployment_id}/create_flow_run", json=body.model_dump(mode="json", exclude_unset=True)
    )
    return UUID(response.json()["id"])


async def update_flow_run_labels(client: PrefectClient, flow_run_id: UUID, labels: dict[str, Any]) -> None:
    await request(client, "PATCH", f"/flow_runs/{flow_run_id}/labels", json=labels)
