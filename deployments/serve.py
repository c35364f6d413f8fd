"""The embedded default's executor: deploy every task-type flow to the ``eotasks`` work pool and run
the warm worker on it, in this one process.

``python -m deployments.serve``. Production runs the same worker type on the same kind of pool
(``prefect deploy --all`` from prefect.yaml, then ``prefect worker start --type eotasks-warm``), so
both modes execute every flow run the same way: a child forked from a preloaded forkserver.
"""

from __future__ import annotations

import asyncio
import os

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectAlreadyExists

from eotasks.recovery import ensure_recovery_automations
from eotasks.settings import get_settings
from eotasks.warm.worker import WORKER_TYPE, WarmProcessWorker
from flows.bandmath import bandmath
from flows.jpeg import jpeg
from flows.lbe import lbe
from flows.monitor import monitor
from flows.mt_stats import mt_stats
from flows.openeo import openeo

FLOWS = [bandmath, lbe, jpeg, mt_stats, openeo]


def weekly_demo_field() -> dict:
    from eotasks.catalog.demo import demo_fields

    return {
        "name": "demo-field",
        "bm_type": "NDVI",
        "sensors": ["sentinel2l2a", "landsat8"],
        "days": 364,
        "end_date": "2023-12-31",
        "geometry": demo_fields()[0]["geometry"],
    }


async def deployments() -> list:
    """The deployments of prefect.yaml, built from the flow objects (module entrypoints, so the warm
    child finds each flow already imported)."""
    suffix = get_settings().deployment_suffix
    module = EntrypointType.MODULE_PATH
    out = [await f.ato_deployment(name=suffix, tags=["eotasks"], entrypoint_type=module) for f in FLOWS]
    # The operator's weekly monitoring job of prefect.yaml, on the demo field.
    out.append(
        await monitor.ato_deployment(
            name="weekly-demo-field",
            tags=["eotasks", "monitoring"],
            cron="0 6 * * 1",
            parameters=weekly_demo_field(),
            entrypoint_type=module,
        )
    )
    # The recovery flow the automations of eotasks/recovery.py start (not tagged "eotasks": never recovered itself).
    from flows.recover import recover

    out.append(await recover.ato_deployment(name=suffix, tags=["eotasks-recovery"], entrypoint_type=module))
    if os.environ.get("EOTASKS_SERVE_NOOP"):  # bench/api.py's orchestration floor, and the warm-path probe
        from flows.noop import noop

        out.append(await noop.ato_deployment(name=suffix, entrypoint_type=module))
    return out


async def ensure_work_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.create_work_pool(
                WorkPoolCreate(name=name, type=WORKER_TYPE, base_job_template=WarmProcessWorker.get_default_base_job_template())
            )
        except ObjectAlreadyExists:
            pass


async def main_async() -> None:
    settings = get_settings()
    await ensure_work_pool(settings.work_pool)
    for deployment in await deployments():
        await deployment.aapply(work_pool_name=settings.work_pool)
    await ensure_recovery_automations(f"recover/{settings.deployment_suffix}")
    worker = WarmProcessWorker(work_pool_name=settings.work_pool, limit=settings.serve_limit, name=f"embedded-{os.getpid()}")
    await worker.start()


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
