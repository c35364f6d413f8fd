"""Serve every task-type flow as a deployment from one process (the embedded default).

``python -m deployments.serve``: no work pool needed; each flow run gets its own process.
Production runs the same flows from ``prefect.yaml`` on a process work pool instead.
"""

from __future__ import annotations

import os

from prefect import serve

from eotasks.settings import get_settings
from flows.bandmath import bandmath
from flows.jpeg import jpeg
from flows.lbe import lbe
from flows.monitor import monitor
from flows.mt_stats import mt_stats

FLOWS = [bandmath, lbe, jpeg, mt_stats]


def weekly_demo_field() -> dict:
    from eotasks.catalog.demo import demo_fields

    return {"name": "demo-field", "bm_type": "NDVI", "sensors": ["sentinel2l2a", "landsat8"], "days": 364,
            "end_date": "2023-12-31", "geometry": demo_fields()[0]["geometry"]}


def main() -> None:
    settings = get_settings()
    deployments = [f.to_deployment(name=settings.deployment_suffix, tags=["eotasks"]) for f in FLOWS]
    # The operator's weekly monitoring job of prefect.yaml, on the demo field.
    deployments.append(monitor.to_deployment(name="weekly-demo-field", tags=["eotasks", "monitoring"], cron="0 6 * * 1",
                                             parameters=weekly_demo_field()))
    if os.environ.get("EOTASKS_SERVE_NOOP"):  # bench/api.py's orchestration floor
        from flows.noop import noop

        deployments.append(noop.to_deployment(name=settings.deployment_suffix))
    # pause_on_shutdown=False: stopping the embedded service must not pause schedules for good.
    serve(*deployments, limit=settings.serve_limit, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
