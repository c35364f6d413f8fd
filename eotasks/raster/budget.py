"""What a task will read, counted before anything is read: pixels x bands of its read windows.

The AOI's area says little about cost: a read window is the AOI's bounds in the scene's CRS at each
band's resolution, so two small squares at opposite corners of a tile span the whole tile. The
count is made from the catalogue (the scene's CRS, extent and band resolutions) and the AOI, so the
gateway can refuse a task at submission (a 400 naming the field and the limit) and the crop step
checks the same number again before its first read.

- Raster outputs (bandmath, lbe, jpeg) cover the AOI's bounds: one window over all its parts.
- Statistics (mt_stats) read each part on its own: the sum of the parts' windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from eotasks.errors import UserError
from eotasks.raster.aoi import to_crs


def _scene_extent(crs: str, footprint: dict[str, Any]) -> BaseGeometry:
    t = Transformer.from_crs(4326, CRS.from_user_input(crs), always_xy=True)
    import numpy as np

    return shapely.transform(shape(footprint), lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def window_pixels(bounds: tuple[float, float, float, float], resolution: float) -> int:
    minx, miny, maxx, maxy = bounds
    if maxx <= minx or maxy <= miny:
        return 0
    return math.ceil((maxx - minx) / resolution) * math.ceil((maxy - miny) / resolution)


def read_pixels(crs: str, footprint: dict[str, Any], resolutions: Iterable[float], aoi_lonlat: BaseGeometry | None,
                per_part: bool) -> int:
    """Pixels x bands the reads of one scene cover: each band at its own resolution, over the AOI's
    window (each part's, when ``per_part``) clipped to the scene; the whole scene without an AOI."""
    extent = _scene_extent(crs, footprint)
    if aoi_lonlat is None:
        windows = [extent.bounds]
    else:
        aoi = to_crs(aoi_lonlat, crs)
        parts = list(getattr(aoi, "geoms", [aoi])) if per_part else [aoi]
        windows = []
        for part in parts:
            clipped = box(*part.bounds).intersection(box(*extent.bounds))
            if not clipped.is_empty:
                windows.append(clipped.bounds)
    return sum(window_pixels(w, r) for w in windows for r in resolutions)


def check_read_budget(pixels: int, limit: int, field: str) -> None:
    if pixels > limit:
        raise UserError(f"The task would read {pixels:,} pixels (pixels x bands of its read windows), more than the limit of "
                        f"{limit:,}; use a smaller area of interest, fewer bands, or one task per part", field=field)
