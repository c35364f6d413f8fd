"""Step ``warp``: a result onto the request's output grid (SPEC §5), then the AOI on that grid."""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task
from shapely.geometry.base import BaseGeometry

from eotasks.raster.aoi import to_crs
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster
from eotasks.raster.warp import resampling_named
from tasks._policy import compute_step


def onto_grid(
    raster: Raster, grid: Grid, resample: str, aoi: BaseGeometry | None, mask_outside: bool, stored: bool = False
) -> Raster:
    """Warped with ``resample`` (GDAL, nodata never mixed into a valid pixel), then no data where a
    pixel's centre is outside a polygon AOI; ``stored`` numbers (``lbe``'s integers) rounded to the
    nearest, as GDAL writes a resampled value into an integer band."""
    out = raster.warp(grid, resampling_named(resample))
    if aoi is not None and mask_outside:
        out = out.mask_outside(to_crs(aoi, grid.crs))
    dtypes = dict(raster.attrs.get("dtypes") or {})
    if stored and dtypes and all(np.issubdtype(np.dtype(d), np.integer) for d in dtypes.values()):
        out = out.replace(values=np.floor(out.values + 0.5))  # GDAL rounds half up, not to even
    return out


@task(name="warp", task_run_name="warp", timeout_seconds=900, **compute_step())
def warp(raster: Raster, grid: Grid, resample: str, aoi: BaseGeometry | None, mask_outside: bool, stored: bool = False) -> Raster:
    out = onto_grid(raster, grid, resample, aoi, mask_outside, stored)
    get_run_logger().info(
        "onto %s, %d x %d px of %g x %g (%s): %d px with data",
        grid.crs,
        grid.width,
        grid.height,
        *grid.resolution,
        resample,
        int(out.valid.sum()),
    )
    return out
