"""Step ``encode`` (stage ``publish``): a Raster into the file the client downloads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task

from eotasks.raster.image import Raster
from tasks._policy import compute_step

NODATA = -9999.0  # bandmath's Float32 GeoTIFFs (SPEC §3)


def scratch_dir() -> Path:
    """A private folder for one run's files before they are published (removed by publish)."""
    return Path(tempfile.mkdtemp(prefix="eotasks-out-"))


@task(name="encode", task_run_name="publish", timeout_seconds=900, **compute_step())
def encode_cog(raster: Raster, name: str) -> Path:
    """A Float32 COG, 512 x 512 blocks, DEFLATE, nodata -9999, one band per expression."""
    path = scratch_dir() / name
    raster.to_cog(path, dtype=np.float32, nodata=NODATA)
    get_run_logger().info("encoded %s (%d bytes)", name, path.stat().st_size)
    return path
