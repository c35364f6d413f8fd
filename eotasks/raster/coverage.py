"""Exact pixel coverage of a polygon on a grid: each pixel's weight is the fraction of its area
inside the polygon, as exactextract defines and computes it (exactextract does the clipping).

The coverage of a field depends only on the grid, not on a scene's values, so a caller computes it
once per (field, grid) and reuses it for every date and index on that grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class Coverage:
    """Pixels of a grid that a polygon meets: flat indices into the grid, and their weights (0, 1]."""

    width: int
    height: int
    cells: np.ndarray  # int64 row-major indices into the (height, width) grid
    weights: np.ndarray  # float64 fractions of each pixel's area inside the polygon

    def rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        return np.divmod(self.cells, self.width)


def exact_coverage(geom: BaseGeometry, transform: Affine, width: int, height: int) -> Coverage:
    """The pixels of a north-up grid that ``geom`` (in the grid's CRS) meets, with their coverage.

    Only the polygon's own window is handed to exactextract, so memory follows the field, not the grid."""
    from exactextract import exact_extract
    from exactextract.feature import JSONFeatureSource
    from exactextract.raster import NumPyRasterSource

    res_x, res_y = transform.a, -transform.e
    minx, miny, maxx, maxy = geom.bounds
    c0 = max(math.floor((minx - transform.c) / res_x), 0)
    c1 = min(math.ceil((maxx - transform.c) / res_x), width)
    r0 = max(math.floor((transform.f - maxy) / res_y), 0)
    r1 = min(math.ceil((transform.f - miny) / res_y), height)
    if c1 <= c0 or r1 <= r0:
        return Coverage(width, height, np.zeros(0, np.int64), np.zeros(0, np.float64))
    w, h = c1 - c0, r1 - r0
    x0, y1 = transform.c + c0 * res_x, transform.f - r0 * res_y
    raster = NumPyRasterSource(np.zeros((h, w), np.float32), xmin=x0, ymin=y1 - h * res_y, xmax=x0 + w * res_x, ymax=y1)
    feature = {"type": "Feature", "id": 0, "properties": {}, "geometry": mapping(geom)}
    [out] = exact_extract(raster, JSONFeatureSource([feature]), ["cell_id", "coverage"], output="geojson")
    local = np.asarray(out["properties"]["cell_id"], np.int64)
    weights = np.asarray(out["properties"]["coverage"], np.float64)
    keep = weights > 0
    rows, cols = np.divmod(local[keep], w)
    return Coverage(width, height, (rows + r0) * width + (cols + c0), weights[keep])


def centre_coverage(geom: BaseGeometry, transform: Affine, width: int, height: int) -> Coverage:
    """The pixels whose centres are inside ``geom``, weight 1: the same rule and the same
    rasterisation as a single AOI's crop (``crop_to_aoi``), on the polygon's window only."""
    from eotasks.raster.aoi import centre_inside
    from eotasks.raster.grid import Grid, centre_window

    window = centre_window(geom.bounds, transform, width, height)
    if window is None:
        return Coverage(width, height, np.zeros(0, np.int64), np.zeros(0, np.float64))
    c0, r0, w, h = int(window.col_off), int(window.row_off), int(window.width), int(window.height)
    local = transform * Affine.translation(c0, r0)
    inside = centre_inside(geom, Grid("", local, w, h))
    rows, cols = np.nonzero(inside)
    return Coverage(width, height, (rows + r0) * width + (cols + c0), np.ones(rows.size, np.float64))
