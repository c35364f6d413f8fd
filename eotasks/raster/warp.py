"""Reprojection of computed values to Web Mercator (EPSG:3857) for pictures."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.warp import reproject, transform_bounds
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from eotasks.raster.aoi import to_crs
from eotasks.raster.crop import Grid

WEB_MERCATOR = "EPSG:3857"


@dataclass
class Warped:
    values: np.ndarray  # (bands, rows, cols) float64, NaN where there is no data
    transform: Affine
    inside: np.ndarray  # bool: pixel centre inside the AOI (all True without a polygon AOI)

    @property
    def valid(self) -> np.ndarray:
        return self.inside & np.isfinite(self.values).all(axis=0)


def output_shape(bounds_3857: tuple[float, float, float, float], px_size: float) -> tuple[int, int]:
    minx, miny, maxx, maxy = bounds_3857
    return max(1, math.ceil((maxy - miny) / px_size)), max(1, math.ceil((maxx - minx) / px_size))


def aoi_pixels(aoi_lonlat: BaseGeometry, px_size: float) -> int:
    """How many EPSG:3857 pixels of ``px_size`` the AOI's bounds need (for the output-size limit)."""
    rows, cols = output_shape(to_crs(aoi_lonlat, WEB_MERCATOR).bounds, px_size)
    return rows * cols


def warp_to_3857(
    values: np.ndarray,
    grid: Grid,
    px_size: float,
    resampling: Resampling,
    aoi_lonlat: BaseGeometry | None,
    mask_outside: bool,
    max_pixels: int,
) -> Warped:
    """``values`` (bands, rows, cols; NaN = nodata) on ``grid`` -> a north-up EPSG:3857 grid of ``px_size``."""
    bounds = transform_bounds(CRS.from_user_input(grid.crs), WEB_MERCATOR, *grid.bounds, densify_pts=21)
    if aoi_lonlat is not None:
        aoi_bounds = to_crs(aoi_lonlat, WEB_MERCATOR).bounds
        bounds = (max(bounds[0], aoi_bounds[0]), max(bounds[1], aoi_bounds[1]), min(bounds[2], aoi_bounds[2]), min(bounds[3], aoi_bounds[3]))
    rows, cols = output_shape(bounds, px_size)
    if rows * cols > max_pixels:
        from eotasks.errors import UserError

        raise UserError(f"The picture would have {rows * cols} pixels, more than the limit of {max_pixels}; use a larger px_size",
                        field="params.px_size")
    transform = Affine(px_size, 0, bounds[0], 0, -px_size, bounds[3])
    out = np.full((values.shape[0], rows, cols), np.nan, np.float64)
    for i in range(values.shape[0]):
        reproject(values[i].astype(np.float64), out[i], src_transform=grid.transform, src_crs=grid.crs, src_nodata=np.nan,
                  dst_transform=transform, dst_crs=WEB_MERCATOR, dst_nodata=np.nan, resampling=resampling)
    if aoi_lonlat is not None and mask_outside:
        inside = geometry_mask([mapping(to_crs(aoi_lonlat, WEB_MERCATOR))], out_shape=(rows, cols), transform=transform, invert=True)
    else:
        inside = np.ones((rows, cols), bool)
    return Warped(out, transform, inside)
