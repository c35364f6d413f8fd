"""A Raster onto another grid (GDAL's warper), and the grids pictures are drawn on.

No data is never mixed into a valid pixel: the source's NaN is declared as its nodata, so GDAL
leaves those pixels out of every resampling kernel, and an output pixel none of whose sources is
valid is NaN.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from shapely.geometry.base import BaseGeometry

from eotasks.errors import UserError
from eotasks.raster.aoi import to_crs
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster

WEB_MERCATOR = "EPSG:3857"


def resampling_named(name: str) -> Resampling:
    """GDAL's name of a resampling (SPEC: ``cubicspline``), or rasterio's, as rasterio's enum."""
    return Resampling.cubic_spline if name == "cubicspline" else Resampling[name]


def warp(raster: Raster, grid: Grid, resampling: Resampling) -> Raster:
    """Every (y, x) plane of ``raster`` onto ``grid``, in float64, NaN where there is no data."""
    if raster.grid == grid:
        return raster
    planes = raster.values.reshape(-1, *raster.grid.shape)
    out = np.full((planes.shape[0], *grid.shape), np.nan, np.float64)
    for i in range(planes.shape[0]):
        reproject(
            planes[i].astype(np.float64),
            out[i],
            src_transform=raster.grid.transform,
            src_crs=raster.grid.crs,
            src_nodata=np.nan,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=resampling,
        )
    return raster.replace(values=out.reshape(*raster.values.shape[:-2], *grid.shape), grid=grid)


def output_shape(bounds: tuple[float, float, float, float], px_size: float) -> tuple[int, int]:
    minx, miny, maxx, maxy = bounds
    return max(1, math.ceil((maxy - miny) / px_size)), max(1, math.ceil((maxx - minx) / px_size))


def aoi_pixels(aoi_lonlat: BaseGeometry, px_size: float) -> int:
    """How many EPSG:3857 pixels of ``px_size`` the AOI's bounds need (for the output-size limit)."""
    rows, cols = output_shape(to_crs(aoi_lonlat, WEB_MERCATOR).bounds, px_size)
    return rows * cols


def picture_grid(source: Grid, aoi_lonlat: BaseGeometry | None, px_size: float, max_pixels: int) -> Grid:
    """The north-up EPSG:3857 grid of ``px_size`` a picture of ``source`` is drawn on: the source's
    bounds, cut to the AOI's; over ``max_pixels`` is a UserError naming ``px_size``."""
    bounds = transform_bounds(CRS.from_user_input(source.crs), WEB_MERCATOR, *source.bounds, densify_pts=21)
    if aoi_lonlat is not None:
        aoi_bounds = to_crs(aoi_lonlat, WEB_MERCATOR).bounds
        bounds = (
            max(bounds[0], aoi_bounds[0]),
            max(bounds[1], aoi_bounds[1]),
            min(bounds[2], aoi_bounds[2]),
            min(bounds[3], aoi_bounds[3]),
        )
    rows, cols = output_shape(bounds, px_size)
    if rows * cols > max_pixels:
        raise UserError(
            f"The picture would have {rows * cols} pixels, more than the limit of {max_pixels}; use a larger px_size",
            field="params.px_size",
        )
    return Grid(WEB_MERCATOR, Affine(px_size, 0, bounds[0], 0, -px_size, bounds[3]), cols, rows)
