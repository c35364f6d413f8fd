"""Serve every task-type flow as a deployment from one process (the embedded default).

``python -m deployments.serve``: no work pool needed; each flow run gets its own process.
Production runs the same flows from ``prefect.yaml`` on a process work pool instead.
"""

from __future__ import annotations

from prefect import serve

from eotasks.settings import get_settings
from flows.bandmath import bandmath
from flows.jpeg import jpeg
from flows.lbe import lbe
from flows.mt_stats import mt_stats

FLOWS = [bandmath, lbe, jpeg, mt_stats]


def main() -> None:
    settings = get_settings()
    deployments = [f.to_deployment(name=settings.deployment_suffix, tags=["eotasks"]) for f in FLOWS]
    # pause_on_shutdown=False: stopping the embedded service must not pause schedules for good.
    serve(*deployments, limit=settings.serve_limit, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
