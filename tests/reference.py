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
    """The lon/lat ring reprojected along its edges: densified to 1e-4 degrees (~10 m) first."""
    fine = shapely.segmentize(Polygon(lonlat), 1e-4)
    xs, ys = Transformer.from_crs(4326, crs, always_xy=True).transform(*np.array(fine.exterior.coords).T)
    return Polygon(zip(xs, ys, strict=False))


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


def index_from_dn(expression: str, dn: dict[str, np.ndarray], scale: dict[str, float], offset: dict[str, float]) -> np.ndarray:
    """NDVI or EVI written out by hand from reflectance (DN * scale + offset)."""
    refl = {b: v.astype(np.float64) * scale[b] + offset[b] for b, v in dn.items()}
    blue, red, nir = refl.get("blue"), refl["red"], refl["nir"]
    with np.errstate(all="ignore"):
        if expression == "NDVI":
            return (nir - red) / (nir + red)
        if expression == "EVI":
            return 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)
    raise ValueError(expression)


def independent_scene_stats(record, expression: str, lonlat, exclude_cover_pixels: bool = True):
    """(cloud %, the valid values) for one demo scene at cloud_masking_level 1, without eotasks."""
    names = {"sentinel2l2a": {"blue": "B02", "red": "B04", "nir": "B08"}, "landsat8": {"blue": "B2", "red": "B4", "nir": "B5"}}[
        record.sensor
    ]
    dn, scale, offset = {}, {}, {}
    for generic, band in names.items():
        asset = record.assets[band]
        dn[generic], inside, transform = read_polygon(Path(asset["href"]), lonlat, nodata=0)
        scale[generic], offset[generic] = asset["scale"], asset["offset"]
    values = index_from_dn(expression, dn, scale, offset)
    with rasterio.open(record.assets[record.mask_band]["href"]) as m:
        mask = m.read(1)
        mt = m.transform
    rows, cols = np.indices(values.shape)
    cx = transform.c + (cols + 0.5) * transform.a
    cy = transform.f + (rows + 0.5) * transform.e
    mask_here = mask[np.floor((cy - mt.f) / mt.e).astype(int), np.floor((cx - mt.c) / mt.a).astype(int)]
    if record.mask_band == "SCL":
        usable, flagged = ~np.isin(mask_here, (0, 1)), mask_here == 9
    else:
        usable, flagged = (mask_here & 1) == 0, ((mask_here >> 8) & 3) == 3
    covered = inside & usable
    cloud = 100.0 * (flagged & covered).sum() / covered.sum()
    valid = covered & np.isfinite(values) & np.all([v != 0 for v in dn.values()], axis=0)
    if exclude_cover_pixels:
        valid &= ~flagged
    return cloud, values[valid]


def numpy_stats(v: np.ndarray) -> dict[str, float]:
    return {
        "min": v.min(),
        "max": v.max(),
        "average": v.mean(),
        "median": np.median(v),
        "std": v.std(),
        "variance": v.var(),
        "q1": np.percentile(v, 25),
        "q3": np.percentile(v, 75),
        "p10": np.percentile(v, 10),
        "p90": np.percentile(v, 90),
    }


def aoi_statistics(record, indices, aoi, options):
    """One scene's statistics over one AOI through the service's own path, as its answer item
    (``indexes`` form); SceneSkipped when the scene is left out (with its reason)."""
    from eotasks.errors import SceneSkipped
    from eotasks.stats_answer import TimeSeriesAnswer
    from eotasks.timeseries import Field, scene_statistics

    outcome = scene_statistics(record, indices, [Field(None, aoi)], options)
    if outcome.skipped:
        raise SceneSkipped(outcome.skipped[0].error)
    [row] = outcome.rows
    return TimeSeriesAnswer(list(indices), {None: 0}).result_item(row)


def fields_statistics(record, indices, fields, options):
    """(result items, error items) of every field one scene meets, through the service's own path,
    as a fields answer shows them (``field_id``, ``indexes``)."""
    from eotasks.stats_answer import TimeSeriesAnswer
    from eotasks.timeseries import Field, scene_statistics

    outcome = scene_statistics(record, indices, [Field(fid, geom) for fid, geom in fields], options)
    answer = TimeSeriesAnswer(list(indices), {fid: i for i, (fid, _) in enumerate(fields)})
    return [answer.result_item(r) for r in outcome.rows], [answer.error_item(s) for s in outcome.skipped]


def reproject_onto(values, src_transform, src_crs, dst_transform, dst_crs, shape, resampling, nodata=np.nan, dtype=np.float64):
    """``values`` onto a target grid with rasterio's reproject (GDAL), ``nodata`` in and out."""
    from rasterio.warp import reproject

    out = np.full(shape, nodata, dtype)
    reproject(
        values,
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        src_nodata=nodata,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        dst_nodata=nodata,
        resampling=resampling,
    )
    return out
