"""AOIs: geodesic area whatever the winding, edges followed when reprojected, bbox = polygon."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from eotasks.models import AOIParams
from eotasks.raster.aoi import aoi_from_bbox, geodesic_area_km2, to_crs


def _square(x: float, y: float, d: float, clockwise: bool) -> list:
    ring = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
    return [ring[::-1] if clockwise else ring]


def test_opposite_windings_do_not_cancel_the_area():
    one = shape({"type": "Polygon", "coordinates": _square(10, 50, 0.5, False)})
    multi = shape({"type": "MultiPolygon", "coordinates": [_square(10, 50, 0.5, False), _square(12, 50, 0.5, True)]})
    a = geodesic_area_km2(one)
    assert 1000 < a < 2000
    # Same-size parts at the same latitude: twice the area, not 0 (it was 0 and passed any limit).
    assert abs(geodesic_area_km2(multi) - 2 * a) < 1e-6 * a


def test_a_one_degree_polygon_at_60n_follows_its_edges_in_utm():
    lonlat = shape({"type": "Polygon", "coordinates": [[[8, 60], [9, 60], [9, 60.5], [8, 60.5], [8, 60]]]})
    utm = to_crs(lonlat, "EPSG:32632")
    # Reference: the same outline densified to ~10 m steps, transformed independently.
    fine = shapely.segmentize(lonlat, 1e-4)
    t = Transformer.from_crs(4326, 32632, always_xy=True)
    reference = shapely.transform(fine, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    assert utm.hausdorff_distance(reference) < 0.5  # metres; vertex-by-vertex was ~105 m off
    corners_only = shapely.transform(lonlat, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    assert corners_only.hausdorff_distance(reference) > 50  # what the test would catch


def test_bbox_and_polygon_of_one_rectangle_crop_the_same_pixels():
    """On the real sample crop: the same rectangle as bbox and as geometry gives one grid, and the
    polygon's inside mask covers every pixel of it (the rectangle's own pixels)."""
    from eotasks.raster.read import Asset, read_aoi
    from tests.conftest import CROP_DIR

    assets = {b: Asset(href=str(CROP_DIR / f"{b}.tif"), resolution=10.0, nodata=0) for b in ("B04", "B08")}
    bbox = [-75.655, 37.685, -75.632, 37.70]
    poly = shape(
        {
            "type": "Polygon",
            "coordinates": [[[-75.655, 37.685], [-75.655, 37.70], [-75.632, 37.70], [-75.632, 37.685], [-75.655, 37.685]]],
        }
    )
    by_bbox = read_aoi(assets, ["B04", "B08"], aoi_from_bbox(bbox), mask_outside=False)
    by_poly = read_aoi(assets, ["B04", "B08"], poly, mask_outside=True)
    assert by_bbox.grid == by_poly.grid
    inside = by_poly.valid[0]
    for band in ("B04", "B08"):
        np.testing.assert_array_equal(by_bbox.band(band)[inside], by_poly.band(band)[inside])
    # Pixels left out by the polygon are only those whose centres fall outside the curved outline.
    assert by_bbox.valid.all() and inside.mean() > 0.97


def test_bbox_and_polygon_give_one_shape_in_the_scene_crs():
    bbox = [8.0, 60.0, 9.0, 60.5]
    poly = {"type": "Polygon", "coordinates": [[[8, 60], [8, 60.5], [9, 60.5], [9, 60], [8, 60]]]}  # clockwise, other start
    a = to_crs(aoi_from_bbox(bbox), "EPSG:32632")
    b = to_crs(shape(poly), "EPSG:32632")
    assert a.bounds == b.bounds
    assert a.symmetric_difference(b).area < 1e-6
    # The pixels whose centres fall inside, on a 10 m grid over the area, are the same.
    xs = np.arange(a.bounds[0], a.bounds[2], 10.0)[::50] + 5
    ys = np.arange(a.bounds[1], a.bounds[3], 10.0)[::50] + 5
    gx, gy = np.meshgrid(xs, ys)
    np.testing.assert_array_equal(shapely.contains_xy(a, gx, gy), shapely.contains_xy(b, gx, gy))
    assert AOIParams(bbox=bbox).aoi_shape().bounds == tuple(bbox)
