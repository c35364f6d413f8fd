"""A pixel grid: CRS, north-up affine transform and size. Every raster of the service lives on one.

Also the grids a request can ask for (SPEC §5): target-aligned at a resolution (pixel edges on
whole multiples of it, like ``gdalwarp -tap``) or a number of pixels across the AOI's bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.windows import Window


@dataclass(frozen=True)
class Grid:
    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def resolution(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))

    def window(self, window: Window) -> Grid:
        """The sub-grid a window of this grid covers."""
        col, row = int(window.col_off), int(window.row_off)
        return Grid(self.crs, self.transform * Affine.translation(col, row), int(window.width), int(window.height))

    def block(self, row: int, col: int, height: int, width: int) -> Grid:
        return self.window(Window(col, row, min(width, self.width - col), min(height, self.height - row)))

    def key(self) -> tuple:
        """A hashable identity (for caches of what depends only on the grid)."""
        return (self.crs, tuple(self.transform)[:6], self.width, self.height)


def centre_window(bounds: tuple[float, float, float, float], transform: Affine, width: int, height: int) -> Window | None:
    """Pixels of a north-up grid whose centres lie within ``bounds``; None when there are none."""
    minx, miny, maxx, maxy = bounds
    inv = ~transform
    c0, r0 = inv @ (minx, maxy)
    c1, r1 = inv @ (maxx, miny)
    col_start = max(math.ceil(c0 - 0.5), 0)
    col_stop = min(math.floor(c1 - 0.5) + 1, width)
    row_start = max(math.ceil(r0 - 0.5), 0)
    row_stop = min(math.floor(r1 - 0.5) + 1, height)
    if col_stop <= col_start or row_stop <= row_start:
        return None
    return Window(col_start, row_start, col_stop - col_start, row_stop - row_start)


def aligned_grid(bounds: tuple[float, float, float, float], crs: str, resolution: tuple[float, float]) -> Grid:
    """The smallest grid of ``resolution`` whose pixel edges lie on whole multiples of it and which
    covers ``bounds`` (``gdalwarp -tap``): the same AOI always lands on the same pixels."""
    rx, ry = resolution
    minx, miny, maxx, maxy = bounds
    # GDAL's arithmetic exactly (gdalwarp_lib.cpp): the same request gives gdalwarp's grid.
    x0 = math.floor(minx / rx) * rx
    y0 = math.floor(miny / ry) * ry
    x1 = math.ceil(maxx / rx) * rx
    y1 = math.ceil(maxy / ry) * ry
    width, height = max(1, round((x1 - x0) / rx)), max(1, round((y1 - y0) / ry))
    return Grid(crs, Affine(rx, 0, x0, 0, -ry, y1), width, height)


def sized_grid(bounds: tuple[float, float, float, float], crs: str, width: int | None, height: int | None) -> Grid:
    """``bounds`` divided into ``width`` x ``height`` pixels; a missing one follows from the aspect
    ratio (square-ish pixels), at least one pixel."""
    minx, miny, maxx, maxy = bounds
    w_span, h_span = maxx - minx, maxy - miny
    if width is None and height is None:
        raise ValueError("width or height is needed")
    if width is None:
        width = max(1, round(height * w_span / h_span))  # type: ignore[operator]
    if height is None:
        height = max(1, round(width * h_span / w_span))
    return Grid(crs, Affine(w_span / width, 0, minx, 0, -h_span / height, maxy), int(width), int(height))


def output_grid(
    bounds: tuple[float, float, float, float],
    crs: str,
    *,
    resolution: tuple[float, float] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> Grid:
    """SPEC §5's output grid over ``bounds`` (in ``crs``): target-aligned pixels of ``resolution``,
    or the bounds divided into ``width`` x ``height``."""
    if resolution is not None:
        return aligned_grid(bounds, crs, resolution)
    return sized_grid(bounds, crs, width, height)


def matching_resolution(
    src_crs: str, src_resolution: float, src_bounds: tuple[float, float, float, float], dst_crs: str
) -> tuple[float, float]:
    """The pixel size in ``dst_crs`` that keeps about as many pixels across ``src_bounds`` as
    ``src_resolution`` gives in ``src_crs`` (GDAL's own choice, as gdalwarp makes it)."""
    from rasterio.warp import calculate_default_transform

    minx, miny, maxx, maxy = src_bounds
    width = max(1, round((maxx - minx) / src_resolution))
    height = max(1, round((maxy - miny) / src_resolution))
    transform, _, _ = calculate_default_transform(src_crs, dst_crs, width, height, minx, miny, maxx, maxy)
    return abs(transform.a), abs(transform.e)
