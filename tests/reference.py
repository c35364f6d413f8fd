"""Independent reference computations for the tests: plain rasterio + numpy + shapely, no eotasks."""

from __future__ import annotations

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import Polygon

from tests.conftest import CROP_DIR


def independent_ndvi(lonlat: list[tuple[float, float]]):
    """NDVI (float64) of the real crop on the pixels whose centres are inside the polygon's bounds,
    which of them are inside the polygon, and the window's transform."""
    with rasterio.open(CROP_DIR / "B04.tif") as red, rasterio.open(CROP_DIR / "B08.tif") as nir:
        xs, ys = Transformer.from_crs(4326, red.crs, always_xy=True).transform(*np.array(lonlat).T)
        poly = Polygon(zip(xs, ys))
        t = red.transform
        cx = t.c + (np.arange(red.width) + 0.5) * t.a
        cy = t.f + (np.arange(red.height) + 0.5) * t.e
        cols = np.nonzero((cx >= poly.bounds[0]) & (cx <= poly.bounds[2]))[0]
        rows = np.nonzero((cy >= poly.bounds[1]) & (cy <= poly.bounds[3]))[0]
        window = Window(cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
        r = red.read(1, window=window).astype(np.float64) / 10000
        n = nir.read(1, window=window).astype(np.float64) / 10000
        inside = shapely.contains_xy(poly, *np.meshgrid(cx[cols], cy[rows]))
        return (n - r) / (n + r), inside, red.window_transform(window)
