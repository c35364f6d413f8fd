"""Prefect's stock embedded execution, for bench/api.py's baseline: ``serve()`` of the task-type
flows, a new ``python -m prefect.engine`` process per run, polled every PREFECT_RUNNER_POLL_FREQUENCY.

This is what ``deployments/serve.py`` did before the warm worker; it is kept only to be measured.
"""

from __future__ import annotations

from prefect import serve

from eotasks.settings import get_settings
from flows.bandmath import bandmath


def main() -> None:
    settings = get_settings()
    serve(
        bandmath.to_deployment(name=settings.deployment_suffix, tags=["eotasks"]),
        limit=settings.serve_limit,
        pause_on_shutdown=False,
    )


if __name__ == "__main__":
    main()
