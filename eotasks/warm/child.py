"""What the forkserver preloads, and what each forked child runs: ``python -m prefect.engine``.

The forkserver imports this module once. Importing it pays for everything a flow run needs
(Prefect's engines, our flows and steps, numpy, rasterio/GDAL, pyproj, shapely) and nothing more:
no thread, event loop, Prefect client, GDAL dataset or boto3 session may exist before a fork, since
a forked child would inherit it half-alive. ``THREADS_AFTER_PRELOAD`` records that this held.
"""

from __future__ import annotations

import gc
import importlib
import os
import runpy
import sys
import threading
import warnings

import numpy  # noqa: F401
import PIL.Image

# The order follows the cost: Prefect first (its engines are most of a cold start), then the
# raster stack, then our flows (which import our steps and the raster code).
import prefect
import prefect.engine
import prefect.flow_engine
import prefect.task_engine  # noqa: F401
import pyproj  # noqa: F401
import rasterio  # noqa: F401
import shapely  # noqa: F401
from prefect.plugins import load_prefect_collections

import flows.bandmath
import flows.jpeg
import flows.lbe
import flows.monitor
import flows.mt_stats
import flows.noop
import flows.openeo
import flows.recover  # noqa: F401

# What a run would otherwise import on first use, every run again (found with the report at the
# end of run_flow_run; the README has what they cost): Prefect's engine-side lazy imports, our
# database drivers, the S3 store, numpy.ma (rasterio's writer), httpx's IDNA,
# the schedules' croniter.
# Importing any of them starts no thread and opens nothing.
LAZY_IMPORTS = (
    "prefect.runner",
    "prefect.deployments.steps",
    "prefect.deployments.steps.pull",
    "prefect.deployments.steps.utility",
    "prefect.utilities.visualization",
    "prefect.locking._filelock",
    "prefect._internal.installation",
    "prefect._internal.integrations",
    "prefect._internal.observers",
    "prefect._internal.infrastructure_exit_codes",
    "prefect._internal._observation_delivery",
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.sqlite",
    "psycopg",
    "sqlite3",
    "numpy.ma",
    "encodings.idna",
    "stringprep",
    "ctypes.util",
    "multiprocessing.popen_fork",
    "multiprocessing.popen_forkserver",
    "eotasks.warm.forkserver",
    "boto3",
    "botocore.config",
    "s3fs",
    "fsspec.implementations.local",
    "rich._emoji_codes",
    "prefect._vendor.croniter",
    "prefect._internal.pytz",
    "pytz",
    "curses",
    "boto3.s3.inject",
    "boto3.s3.transfer",
    # The raster type's operations import their modules on first use (they import the type back).
    "eotasks.raster.evaluate",
    "eotasks.raster.warp",
    "eotasks.raster.encode",
    "rasterio.features",
    "rasterio.shutil",
    "rasterio.rio.helpers",
    "rasterio.vrt",
    # Colormaps (jpeg) and exact coverage (mt_stats fields): a second and a third of a second a run.
    "matplotlib",
    "matplotlib.colors",
    "matplotlib.cm",
    "exactextract",
    "exactextract.feature",
    "exactextract.raster",
    "tasks.artifacts",
    # Statistics on an output grid (mt_stats with crs/resolution, or aggregation).
    "eotasks.aggregate",
    "eotasks.raster.composite",
    # openEO's save_result formats (netCDF through xarray and h5netcdf, PNG through Pillow).
    "eotasks.openeo.formats",
    "xarray",
    "h5netcdf",
    "h5netcdf.legacyapi",
    "h5py",
    "h5py._hl.dims",
    "encodings.ascii",
    "dask.array",  # xarray's writer imports them on its first write
    "scipy.sparse",
    "scipy.special",
    "scipy.fft",
    "charset_normalizer",
    "pandas",
    "PIL.Image",
    "PIL.PngImagePlugin",
)
for _name in LAZY_IMPORTS:
    importlib.import_module(_name)
# The spectral-index catalogue, parsed once for every child (each expression is resolved against it).
from eotasks.raster.indices import spyndex_catalogue, spyndex_constants  # noqa: E402

spyndex_catalogue()
spyndex_constants()
# Prefect imports every installed collection (prefect-aws, prefect-dask and their dependencies)
# the first time a run loads a block: the production topology's result storage
# and store are blocks. Pillow registers its image formats on the first save.
load_prefect_collections()
PIL.Image.init()


def share_prefect_tls_context() -> None:
    """Every Prefect client builds its TLS context from the CA bundle (``ssl.create_default_context
    (cafile=...)``, two clients a run) even for an http:// API. Built here once per CA
    file, in the forkserver for the default bundle, and handed to the clients through their own
    ``httpx_settings["verify"]``, which Prefect uses as given (a changed CA file is read when the
    worker restarts); the recipe is Prefect's own, and with
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY or a ``verify`` of the caller's, nothing changes.
    tests/test_warm_contract.py pins what this relies on."""
    import ssl

    import certifi
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    contexts: dict[str, ssl.SSLContext] = {}

    def verified(cafile: str) -> ssl.SSLContext:
        if cafile not in contexts:
            contexts[cafile] = ssl.create_default_context(cafile=cafile)
        return contexts[cafile]

    verified(PREFECT_API_SSL_CERT_FILE.value() or certifi.where())  # what a child will ask for
    for cls in (PrefectClient, SyncPrefectClient):
        if getattr(cls.__init__, "_eotasks_shared_tls", False):
            continue
        original = cls.__init__

        def __init__(self, api, *args, httpx_settings=None, _original=original, **kwargs):  # noqa: N807
            if not PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value() and "verify" not in (httpx_settings or {}):
                cafile = PREFECT_API_SSL_CERT_FILE.value() or certifi.where()
                httpx_settings = {**(httpx_settings or {}), "verify": verified(cafile)}
            _original(self, api, *args, httpx_settings=httpx_settings, **kwargs)

        __init__._eotasks_shared_tls = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]


share_prefect_tls_context()

# What the preload built lives as long as every child: out of the collector's view, a child's full
# collection walks only what its run allocated, and does not write to (so copy) the shared pages.
gc.collect()
gc.freeze()

PRELOADED = True
PRELOADED_MODULES = frozenset(sys.modules)
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
        try:
            runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        finally:
            report_late_imports()


def report_late_imports() -> None:
    """One stderr line (the worker's log) naming what this run imported that the forkserver had not:
    each such module costs every run its import again, so LAZY_IMPORTS should take it."""
    late = sorted(set(sys.modules) - PRELOADED_MODULES)
    if late:
        print(
            f"eotasks-warm: this run imported {len(late)} module(s) the forkserver had not preloaded: {', '.join(late)}",
            file=sys.stderr,
            flush=True,
        )


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
