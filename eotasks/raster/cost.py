"""What a task will read and hold, counted before anything is read: pixels x bands of its read
windows, and the bytes each such pixel costs in memory.

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
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eotasks.errors import UserError
from eotasks.raster.aoi import to_crs

# Bytes a pixel costs in memory, by what it is (eotasks.raster.image: values are float64, outputs
# float32; lbe keeps the stored numbers as float32, which holds every 16-bit value exactly).
BYTES_VALUE = 8  # a band read and scaled (reflectance, kelvin ...)
BYTES_RAW = 4  # a band read as stored (lbe)
BYTES_OUTPUT = 4  # an output band (bandmath's Float32, jpeg's values)
BYTES_INDEX = 8  # a picture's values warped onto its grid (float64, per band)
BYTES_PICTURE = 5  # the 8-bit picture: three colour bytes, alpha, and the class index or mask
BYTES_STATS_PIXEL = 24  # a field's pixel kept for the statistics of one index: value, weight, field (float64, float64, int64)
BYTES_SORT_PIXEL = 64  # the ordering the weighted quantiles need, for the one index being summarised


def _scene_extent(crs: str, footprint: dict[str, Any]) -> BaseGeometry:
    t = Transformer.from_crs(4326, CRS.from_user_input(crs), always_xy=True)
    import numpy as np

    return shapely.transform(shape(footprint), lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def window_pixels(bounds: tuple[float, float, float, float], resolution: float) -> int:
    minx, miny, maxx, maxy = bounds
    if maxx <= minx or maxy <= miny:
        return 0
    return math.ceil((maxx - minx) / resolution) * math.ceil((maxy - miny) / resolution)


def read_pixels(
    crs: str, footprint: dict[str, Any], resolutions: Iterable[float], aoi_lonlat: BaseGeometry | None, per_part: bool
) -> int:
    """Pixels x bands the reads of one scene cover: each band at its own resolution, over the AOI's
    window (each part's, when ``per_part``) clipped to the scene; the whole scene without an AOI."""
    import numpy as np

    extent = np.array(_scene_extent(crs, footprint).bounds)
    if aoi_lonlat is None:
        windows = extent[None, :]
    else:
        aoi = to_crs(aoi_lonlat, crs)
        parts = shapely.get_parts(aoi) if per_part else np.array([aoi])
        b = shapely.bounds(parts).reshape(-1, 4)
        windows = np.column_stack(
            [
                np.maximum(b[:, 0], extent[0]),
                np.maximum(b[:, 1], extent[1]),
                np.minimum(b[:, 2], extent[2]),
                np.minimum(b[:, 3], extent[3]),
            ]
        )
        windows = windows[(windows[:, 2] > windows[:, 0]) & (windows[:, 3] > windows[:, 1])]
    w, h = windows[:, 2] - windows[:, 0], windows[:, 3] - windows[:, 1]
    return int(sum((np.ceil(w / r) * np.ceil(h / r)).sum() for r in resolutions))


def parts_pixels(parts_lonlat: list[BaseGeometry], crs: str, resolution: float) -> int:
    """Pixels of every part's window at ``resolution`` in ``crs``, all parts transformed in one call
    (each window from its bounds' corners and edge midpoints: a budget, not a rasterisation)."""
    import numpy as np

    from eotasks.raster.aoi import from_lonlat

    if not parts_lonlat:
        return 0
    b = np.array([p.bounds for p in parts_lonlat], np.float64)
    mx, my = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    xs = np.stack([b[:, 0], b[:, 2], b[:, 2], b[:, 0], mx, b[:, 2], mx, b[:, 0]], axis=1)
    ys = np.stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3], b[:, 1], my, b[:, 3], my], axis=1)
    transformer = from_lonlat(crs)
    if transformer is not None:
        tx, ty = transformer.transform(xs.ravel(), ys.ravel())
        xs, ys = np.asarray(tx).reshape(xs.shape), np.asarray(ty).reshape(ys.shape)
    width = np.ceil((xs.max(axis=1) - xs.min(axis=1)) / resolution)
    height = np.ceil((ys.max(axis=1) - ys.min(axis=1)) / resolution)
    return int((np.maximum(width, 1) * np.maximum(height, 1)).sum())


def check_read_budget(pixels: int, limit: int, field: str) -> None:
    if pixels > limit:
        raise UserError(
            f"The task would read {pixels:,} pixels (pixels x bands of its read windows), more than the limit of "
            f"{limit:,}; use a smaller area of interest, fewer bands, or one task per part",
            field=field,
        )
