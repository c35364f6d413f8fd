"""Independent reference computations for the tests: plain rasterio + numpy + shapely, no eotasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry import Polygon

from tests.conftest import CROP_DIR


def centre_window(path: Path, bounds_in_crs: tuple[float, float, float, float]):
    """The window of pixels whose centres lie within the bounds, and the pixel-centre coordinates."""
    with rasterio.open(path) as src:
        t = src.transform
        cx = t.c + (np.arange(src.width) + 0.5) * t.a
        cy = t.f + (np.arange(src.height) + 0.5) * t.e
    cols = np.nonzero((cx >= bounds_in_crs[0]) & (cx <= bounds_in_crs[2]))[0]
    rows = np.nonzero((cy >= bounds_in_crs[1]) & (cy <= bounds_in_crs[3]))[0]
    window = Window(cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
    return window, np.meshgrid(cx[cols], cy[rows])


def polygon_in_crs(lonlat, crs) -> Polygon:
    xs, ys = Transformer.from_crs(4326, crs, always_xy=True).transform(*np.array(lonlat).T)
    return Polygon(zip(xs, ys))


def read_polygon(path: Path, lonlat, nodata=0):
    """Stored values over the polygon's bounds, ``nodata`` where the pixel centre is outside; and the transform."""
    with rasterio.open(path) as src:
        poly = polygon_in_crs(lonlat, src.crs)
        window, (gx, gy) = centre_window(path, poly.bounds)
        values = src.read(1, window=window)
        inside = shapely.contains_xy(poly, gx, gy)
        return np.where(inside, values, nodata), inside, src.window_transform(window)


def read_bbox(path: Path, bbox):
    """Stored values over a lon/lat bbox (no masking): pixel centres within its reprojected bounds."""
    with rasterio.open(path) as src:
        bounds = transform_bounds(4326, src.crs, *bbox, densify_pts=33)
        window, _ = centre_window(path, bounds)
        return src.read(1, window=window), src.window_transform(window)


def independent_ndvi(lonlat):
    """NDVI (float64) of the real crop over the polygon's bounds, which pixels are inside, the transform."""
    red, inside, transform = read_polygon(CROP_DIR / "B04.tif", lonlat)
    nir, _, _ = read_polygon(CROP_DIR / "B08.tif", lonlat)
    r, n = red / 10000.0, nir / 10000.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n - r) / (n + r), inside, transform
