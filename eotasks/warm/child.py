"""What the forkserver preloads, and what each forked child runs: ``python -m prefect.engine``.

The forkserver imports this module once. Importing it pays for everything a flow run needs
(Prefect's engines, our flows and steps, numpy, rasterio/GDAL, pyproj, shapely) and nothing more:
no thread, event loop, Prefect client, GDAL dataset or boto3 session may exist before a fork, since
a forked child would inherit it half-alive. ``THREADS_AFTER_PRELOAD`` records that this held.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import warnings

# The order follows the cost: Prefect first (its engines are most of a cold start), then the
# raster stack, then our flows (which import our steps and the raster code).
import prefect  # noqa: F401
import prefect.engine  # noqa: F401
import prefect.flow_engine  # noqa: F401
import prefect.task_engine  # noqa: F401
import numpy  # noqa: F401
import pyproj  # noqa: F401
import rasterio  # noqa: F401
import shapely  # noqa: F401

import flows.bandmath  # noqa: F401
import flows.jpeg  # noqa: F401
import flows.lbe  # noqa: F401
import flows.monitor  # noqa: F401
import flows.mt_stats  # noqa: F401
import flows.noop  # noqa: F401

PRELOADED = True
THREADS_AFTER_PRELOAD = threading.active_count()
WARM_MARKER = "EOTASKS_WARM_CHILD"


def run_flow_run(env: dict[str, str], cwd: str, flow_run_id: str) -> None:
    """The body of one forked child: become the process `python -m prefect.engine` would be.

    The environment is the one the worker computed for this run (job variables, Prefect settings,
    the control-channel port), so settings and logging are rebuilt from it first. Flow heartbeats
    come from a daemon thread of ours (``beat``) instead of the engine's, which a sync flow joins
    at exit (up to a second per run); ours dies with the process.
    """
    os.environ.clear()
    os.environ.update(env)
    os.environ[WARM_MARKER] = f"{os.getppid()}:{THREADS_AFTER_PRELOAD}"
    os.chdir(cwd)

    import prefect.context
    from prefect.logging.configuration import setup_logging

    from eotasks.settings import reset_settings

    prefect.context.refresh_global_settings_context()
    root = prefect.context.GLOBAL_SETTINGS_CONTEXT
    period = root.settings.flows.heartbeat_frequency
    settings = root.settings.model_copy(update={"flows": root.settings.flows.model_copy(update={"heartbeat_frequency": None})})
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(profile=root.profile, settings=settings)
    setup_logging(incremental=False)
    reset_settings()

    if period:
        threading.Thread(target=beat, args=(flow_run_id, max(int(period), 30)), name="eotasks-heartbeat", daemon=True).start()
    sys.argv = ["prefect.engine", flow_run_id]
    with warnings.catch_warnings():
        # runpy warns that prefect.engine is already imported: it is, on purpose (preloaded).
        warnings.simplefilter("ignore", RuntimeWarning)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def beat(flow_run_id: str, period: int) -> None:
    """``prefect.flow-run.heartbeat`` for this run every ``period`` seconds while the process lives:
    the event the engine sends, so an automation on missing heartbeats (eotasks.recovery) sees a run
    whose process or host died. A daemon thread: nothing waits for it at exit."""
    from prefect.events import emit_event

    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"}
    stop = threading.Event()
    while True:
        try:
            emit_event(event="prefect.flow-run.heartbeat", resource=resource)
        except Exception:  # a missed beat is what the automation is for; never fail the run over it
            pass
        stop.wait(period)
