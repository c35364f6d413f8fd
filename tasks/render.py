"""Step ``render``: values -> EPSG:3857 -> 8-bit picture (stretch or colormap) -> encoded file."""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task
from shapely.geometry.base import BaseGeometry

from eotasks.models import JpegParams
from eotasks.raster import render as r
from eotasks.raster.aoi import to_crs
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster
from eotasks.raster.warp import picture_grid, resampling_named
from eotasks.settings import get_settings
from tasks._policy import compute_step


def render_picture(values: Raster, aoi: BaseGeometry | None, params: JpegParams, output: Grid | None = None) -> bytes:
    """``aoi`` is the lon/lat AOI the values were cropped by (``Crop.aoi``); ``output`` the
    request's grid (SPEC §5), else EPSG:3857 at ``px_size`` as always."""
    if output is None:
        px_size = params.px_size or abs(values.grid.transform.a)
        grid = picture_grid(values.grid, aoi, px_size, get_settings().max_output_pixels)
    else:
        grid = output
    warped = values.warp(grid, resampling_named(params.resample))
    if aoi is not None and params.mask_outside:
        warped = warped.mask_outside(to_crs(aoi, grid.crs))
    valid = np.asarray(warped.valid.all(axis=0), bool)
    levels = r.parse_levels(params.levels, None)
    crs, transform = grid.crs, grid.transform
    if warped.values.shape[0] == 3:
        rgb = np.stack([r.stretch(band, valid, levels) for band in warped.values])
        return r.encode(params.format, rgb, valid, crs=crs, transform=transform)
    band = warped.values[0]
    if params.colormap:
        index, palette = r.colorize(band, valid, params.colormap, levels or (-0.5, 0.5), params.colors_limit)
        return r.encode(params.format, None, valid, index=index, palette=palette, crs=crs, transform=transform)
    grey = r.stretch(band, valid, levels)
    return r.encode(params.format, np.stack([grey] * 3), valid, crs=crs, transform=transform)


@task(name="render", task_run_name="render", timeout_seconds=900, **compute_step())
def render(values: Raster, aoi: BaseGeometry | None, params: JpegParams, output: Grid | None = None) -> bytes:
    data = render_picture(values, aoi, params, output)
    get_run_logger().info("rendered a %s picture of %d bytes", params.format, len(data))
    return data
