"""Areas of interest: from a request's bbox or GeoJSON geometry to a shape in the scene's CRS."""

from __future__ import annotations

from typing import Any

import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

_GEOD = Geod(ellps="WGS84")


def aoi_from_bbox(bbox: list[float] | tuple[float, ...]) -> BaseGeometry:
    minx, miny, maxx, maxy = bbox
    # Densify so that the reprojected outline (and its bounds) follows the curved edges.
    step = max(maxx - minx, maxy - miny) / 32
    return shapely.segmentize(box(minx, miny, maxx, maxy), step)


def aoi_from_geojson(geometry: dict[str, Any]) -> BaseGeometry:
    return shape(geometry)


def geodesic_area_km2(geom: BaseGeometry) -> float:
    area, _ = _GEOD.geometry_area_perimeter(geom)
    return abs(area) / 1e6


def to_crs(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    """Reproject a lon/lat geometry's vertices to ``crs`` (pixels are tested against this shape)."""
    dst = CRS.from_user_input(crs)
    if dst == CRS.from_epsg(4326):
        return geom
    transformer = Transformer.from_crs(4326, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _stack(xy: tuple) -> Any:
    import numpy as np

    return np.column_stack(xy)


def footprint_geojson(bounds: tuple[float, float, float, float], crs: Any) -> dict[str, Any]:
    """A scene's footprint in lon/lat from its bounds in its own CRS."""
    src = CRS.from_user_input(crs)
    transformer = Transformer.from_crs(src, 4326, always_xy=True)
    outline = shapely.segmentize(box(*bounds), max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 16)
    return mapping(shapely.transform(outline, lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1]))))
