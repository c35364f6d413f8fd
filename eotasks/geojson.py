"""A client's GeoJSON, rebuilt as plain data of our own and bounded before any geometry work.

What a request carries on to Prefect must be data we built: Prefect treats any object with a
``__prefect_kind`` key in a run's parameters as a template to render (Jinja) or a variable to look
up, so a client's dict is never passed through. A geometry keeps only its ``type`` and its
coordinates (as floats); a FeatureCollection of fields keeps each feature's id and geometry.

The cost of an outline is its vertices, before and after the densification that reprojection needs
(edges are cut into steps of ``DENSIFY_DEG`` first, see ``eotasks.raster.aoi.to_crs``): a few
kilobytes of thin strips across 170 degrees of longitude densify to millions of points. Both counts
are bounded here, in O(vertices), before anything is densified.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from eotasks.raster.aoi import DENSIFY_DEG

POLYGONAL = ("Polygon", "MultiPolygon")


class GeoJSONError(ValueError):
    """A geometry that is malformed or over a limit; the message completes "geometry ..."."""


def _position(value: Any) -> list[float]:
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 3:
        raise GeoJSONError("has malformed coordinates: a position is [longitude, latitude]")
    out = []
    for number in value[:2]:  # a height, if any, plays no part in a 2-D AOI
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise GeoJSONError("has malformed coordinates: positions must be finite numbers")
        out.append(float(number))
    return out


def plain_geometry(value: Any, max_vertices: int) -> dict[str, Any]:
    """``{"type": "Polygon" | "MultiPolygon", "coordinates": [...]}`` rebuilt from ``value``, or
    GeoJSONError. Counting stops at ``max_vertices``, so a huge outline costs nothing to refuse."""
    if not isinstance(value, dict):
        raise GeoJSONError("must be a GeoJSON object")
    kind = value.get("type")
    if kind == "Feature":
        raise GeoJSONError("must be a bare GeoJSON geometry (Polygon or MultiPolygon), not a Feature")
    if kind not in POLYGONAL:
        raise GeoJSONError(f"must be a GeoJSON Polygon or MultiPolygon, got {kind!r}")
    polygons = value.get("coordinates")
    if kind == "Polygon":
        polygons = [polygons]
    if not isinstance(polygons, (list, tuple)) or not polygons:
        raise GeoJSONError("has malformed coordinates")
    count = 0
    rebuilt: list[list[list[list[float]]]] = []
    for polygon in polygons:
        if not isinstance(polygon, (list, tuple)) or not polygon:
            raise GeoJSONError("has malformed coordinates: a polygon is a list of rings")
        rings = []
        for ring in polygon:
            if not isinstance(ring, (list, tuple)):
                raise GeoJSONError("has malformed coordinates: a ring is a list of positions")
            count += len(ring)
            if count > max_vertices:
                raise GeoJSONError(f"has more than {max_vertices:,} vertices, the limit; send a simpler outline")
            positions = [_position(p) for p in ring]
            if len(positions) < 4 or positions[0] != positions[-1]:
                raise GeoJSONError(
                    "has a ring that is not closed (a ring needs 4 or more positions, the last equal to the first)"
                )
            rings.append(positions)
        rebuilt.append(rings)
    return {"type": kind, "coordinates": rebuilt[0] if kind == "Polygon" else rebuilt}


def rings_of(geometry: dict[str, Any]) -> list[list[list[float]]]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return [ring for polygon in polygons for ring in polygon]


def densified_vertices(geometry: dict[str, Any], step: float = DENSIFY_DEG) -> int:
    """How many vertices the outline has once every edge is cut into steps of ``step`` degrees
    (an upper bound of what ``to_crs`` makes of it), without making them."""
    total = 0
    for ring in rings_of(geometry):
        xy = np.asarray(ring, np.float64)
        lengths = np.hypot(*(xy[1:] - xy[:-1]).T)
        total += len(ring) + int(np.ceil(lengths / step).sum())
    return total


def check_densified(geometry: dict[str, Any], limit: int) -> int:
    n = densified_vertices(geometry)
    if n > limit:
        raise GeoJSONError(
            f"would have {n:,} vertices once its edges are densified to {DENSIFY_DEG} degrees for reprojection, "
            f"more than the limit of {limit:,}; send a smaller or simpler area of interest"
        )
    return n
