"""Areas of interest: from a request's bbox or GeoJSON geometry to a shape in the scene's CRS."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    import numpy as np

_GEOD = Geod(ellps="WGS84")


def aoi_from_bbox(bbox: list[float] | tuple[float, ...]) -> BaseGeometry:
    minx, miny, maxx, maxy = bbox
    # Densify so that the reprojected outline (and its bounds) follows the curved edges.
    step = max(maxx - minx, maxy - miny) / 32
    return shapely.segmentize(box(minx, miny, maxx, maxy), step)


def aoi_from_geojson(geometry: dict[str, Any]) -> BaseGeometry:
    return shape(geometry)


def geodesic_area_km2(geom: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, each part counted positive whichever way its rings wind (pyproj's
    area is signed by winding: two parts wound opposite ways would otherwise cancel to 0)."""
    from shapely.geometry.polygon import orient

    total = 0.0
    for part in getattr(geom, "geoms", [geom]):
        area, _ = _GEOD.geometry_area_perimeter(orient(part, 1.0))
        total += abs(area)
    return total / 1e6


# Edges are densified to this step (degrees, ~100 m) before reprojection: a straight edge in lon/lat
# is a curve in UTM, 105 m off a 1-degree edge's chord at 60 N; at 100 m steps it is under 0.1 mm off.
DENSIFY_DEG = 0.001


def to_crs(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    """Reproject a lon/lat geometry to ``crs`` along its edges (pixels are tested against this shape).

    The outline is first reduced to its corners (collinear points dropped) and then densified at a
    fixed step, so the same rectangle sent as a bbox or as a polygon gives the same shape, whatever
    vertices each carried."""
    transformer = from_lonlat(crs)
    if transformer is None:
        return geom
    outline = shapely.segmentize(shapely.simplify(geom, 1e-12, preserve_topology=True), DENSIFY_DEG)
    return shapely.transform(outline, lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1])))


_transformers = threading.local()


def from_lonlat(crs: Any) -> Transformer | None:
    """The lon/lat -> ``crs`` transformer (None when ``crs`` is lon/lat), made once per thread and
    CRS: building one costs more than transforming a field's outline, and they are not shared
    between threads."""
    cache = getattr(_transformers, "cache", None)
    if cache is None:
        cache = _transformers.cache = {}
    key = crs if isinstance(crs, (str, int)) else str(crs)
    if key not in cache:
        dst = CRS.from_user_input(crs)
        cache[key] = None if dst == CRS.from_epsg(4326) else Transformer.from_crs(4326, dst, always_xy=True)
    return cache[key]


def centre_inside(shape_in_crs: BaseGeometry, grid: Any) -> np.ndarray:
    """Which pixels of ``grid`` have their centre inside the shape (in the grid's CRS): the one
    rasterisation every AOI goes through. GDAL's scanline rasteriser decides the bulk; the pixels an
    edge passes through, where its rounding can disagree with the geometry (seen on fine lon/lat
    grids), are decided exactly by point-in-polygon on their centres."""
    import numpy as np
    from rasterio.features import geometry_mask

    shape = (grid.height, grid.width)
    inside = geometry_mask([mapping(shape_in_crs)], out_shape=shape, transform=grid.transform, invert=True, all_touched=False)
    near_edge = geometry_mask(
        [mapping(shape_in_crs.boundary)], out_shape=shape, transform=grid.transform, invert=True, all_touched=True
    )
    rows, cols = np.nonzero(near_edge)
    if rows.size:
        t = grid.transform
        xs = t.c + (cols + 0.5) * t.a + (rows + 0.5) * t.b
        ys = t.f + (cols + 0.5) * t.d + (rows + 0.5) * t.e
        inside[rows, cols] = shapely.contains_xy(shape_in_crs, xs, ys)
    return inside


def _stack(xy: tuple) -> Any:
    import numpy as np

    return np.column_stack(xy)


def footprint_geojson(bounds: tuple[float, float, float, float], crs: Any) -> dict[str, Any]:
    """A scene's footprint in lon/lat from its bounds in its own CRS."""
    src = CRS.from_user_input(crs)
    transformer = Transformer.from_crs(src, 4326, always_xy=True)
    outline = shapely.segmentize(box(*bounds), max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 16)
    return mapping(shapely.transform(outline, lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1]))))
