"""Step ``render``: values -> EPSG:3857 -> 8-bit picture (stretch or colormap) -> encoded file."""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from eotasks.models import JpegParams
from eotasks.raster import render as r
from eotasks.raster.bandmath import NODATA
from eotasks.raster.crop import Grid
from eotasks.raster.warp import WEB_MERCATOR, warp_to_3857
from eotasks.settings import get_settings
from tasks._policy import compute_step


def render_picture(values: np.ndarray, grid: Grid, aoi: BaseGeometry | None, params: JpegParams) -> bytes:
    """``aoi`` is the lon/lat AOI the values were cropped by (``Cropped.aoi``)."""
    data = np.where(values == NODATA, np.nan, values.astype(np.float64))
    px_size = params.px_size or abs(grid.transform.a)
    warped = warp_to_3857(data, grid, px_size, Resampling[params.resample], aoi, params.mask_outside,
                          get_settings().max_output_pixels)
    valid = warped.valid
    levels = r.parse_levels(params.levels, None)
    if warped.values.shape[0] == 3:
        rgb = np.stack([r.stretch(band, valid, levels) for band in warped.values])
        return r.encode(params.format, rgb, valid, crs=WEB_MERCATOR, transform=warped.transform)
    band = warped.values[0]
    if params.colormap:
        index, palette = r.colorize(band, valid, params.colormap, r.parse_levels(params.levels, (-0.5, 0.5)), params.colors_limit)
        return r.encode(params.format, None, valid, index=index, palette=palette, crs=WEB_MERCATOR, transform=warped.transform)
    grey = r.stretch(band, valid, levels)
    return r.encode(params.format, np.stack([grey] * 3), valid, crs=WEB_MERCATOR, transform=warped.transform)


@task(name="render", task_run_name="render", timeout_seconds=900, **compute_step())
def render(values: np.ndarray, grid: Grid, aoi: BaseGeometry | None, params: JpegParams) -> bytes:
    data = render_picture(values, grid, aoi, params)
    get_run_logger().info("rendered a %s picture of %d bytes", params.format, len(data))
    return data
