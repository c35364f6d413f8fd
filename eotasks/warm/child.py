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
    the control-channel port), so settings and logging are rebuilt from it first. Flow heartbeats are
    sent by the worker while this process lives (see ``forkserver.FlowRunHeartbeats``): the engine's
    own heartbeat thread would make every sync flow wait up to a second at exit.
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
    settings = root.settings.model_copy(update={"flows": root.settings.flows.model_copy(update={"heartbeat_frequency": None})})
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(profile=root.profile, settings=settings)
    setup_logging(incremental=False)
    reset_settings()

    sys.argv = ["prefect.engine", flow_run_id]
    with warnings.catch_warnings():
        # runpy warns that prefect.engine is already imported: it is, on purpose (preloaded).
        warnings.simplefilter("ignore", RuntimeWarning)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
