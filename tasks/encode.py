"""What the publish step encodes before it stores it: a Raster as the file the client downloads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from eotasks.raster.image import Raster

NODATA = -9999.0  # bandmath's Float32 GeoTIFFs (SPEC §3)


def scratch_dir() -> Path:
    """A private folder for one run's files before they are published (removed by publish)."""
    return Path(tempfile.mkdtemp(prefix="eotasks-out-"))


class FloatCog:
    """bandmath's answer: a Float32 COG, 512 x 512 blocks, DEFLATE, nodata -9999, one band per
    expression. Encoded by the publish step (SPEC's stage for it); a plain class, so Prefect does
    not walk the raster in the step's inputs."""

    def __init__(self, raster: Raster) -> None:
        self.raster = raster

    def write_to(self, folder: Path, name: str) -> Path:
        path = folder / name
        self.raster.to_cog(path, dtype=np.float32, nodata=NODATA)
        return path
