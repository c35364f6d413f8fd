"""mt_stats over many fields: one read per scene for all of them, against independent answers."""

from __future__ import annotations

import numpy as np
import pytest
from exactextract import exact_extract
from exactextract.feature import JSONFeatureSource
from shapely.geometry import box as shapely_box
from shapely.geometry import mapping, shape

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.errors import SceneSkipped
from eotasks.timeseries import StatsOptions
from tests.reference import aoi_statistics, fields_statistics

FIELDS = [(f["properties"]["id"], shape(f["geometry"])) for f in demo_fields()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields-demo")
    url = f"sqlite:///{root / 'db.sqlite'}"
    from eotasks.db import init_db

    init_db(url)
    return generate_demo(root / "files", s2_scenes=3, landsat_scenes=2, url=url)


def test_centre_fields_equal_one_field_requests(demo):
    """Every field of a many-field pass equals the same field sent alone through the single-AOI path."""
    items = ["NDVI", "EVI"]
    compared = 0
    for record in demo:
        results, errors = fields_statistics(record, items, FIELDS, StatsOptions(richer=True))
        by_id = {r["field_id"]: r for r in results}
        failed = {e["field_id"] for e in errors}
        for fid, geom in FIELDS:
            try:
                alone = aoi_statistics(record, items, geom, StatsOptions())
            except SceneSkipped:
                assert fid in failed or fid not in by_id
                continue
            mine = by_id[fid]
            assert mine["cloud"] == pytest.approx(alone["cloud"], rel=1e-12, abs=1e-12)
            for item in items:
                for key, want in alone["indexes"][item].items():
                    assert mine["indexes"][item][key] == pytest.approx(want, rel=1e-9, abs=1e-12), (fid, item, key)
                assert isinstance(mine["indexes"][item]["count"], int)
            compared += 1
    assert compared > 40


def test_exact_fields_equal_exactextract_on_the_same_pixels(demo):
    """exact coverage: NDVI statistics equal exactextract's over an independently computed NDVI raster."""
    import rasterio

    record = next(r for r in demo if r.sensor == "sentinel2l2a")
    options = StatsOptions(coverage="exact", percentiles=(5.0, 95.0), exclude_cover_pixels=False, richer=True)
    results, _ = fields_statistics(record, ["NDVI"], FIELDS, options)
    with rasterio.open(record.assets["B04"]["href"]) as red, rasterio.open(record.assets["B08"]["href"]) as nir:
        r = red.read(1).astype(float) * record.assets["B04"]["scale"] + record.assets["B04"]["offset"]
        n = nir.read(1).astype(float) * record.assets["B08"]["scale"] + record.assets["B08"]["offset"]
        ndvi = (n - r) / (n + r)
        profile = red.profile
    # The pixels the service leaves out: SCL 0 (no data) and 1 (saturated), and band nodata (DN 0).
    with rasterio.open(record.assets["SCL"]["href"]) as scl_src:
        scl = scl_src.read(1, out_shape=ndvi.shape, resampling=rasterio.enums.Resampling.nearest)
    with rasterio.open(record.assets["B04"]["href"]) as red, rasterio.open(record.assets["B08"]["href"]) as nir:
        fill = (red.read(1) == 0) | (nir.read(1) == 0)
    ndvi[(scl <= 1) | fill | ~np.isfinite(ndvi)] = np.nan
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(**{**profile, "dtype": "float64", "nodata": np.nan}) as ds:
            ds.write(ndvi, 1)
        with mem.open() as ds:
            from eotasks.raster.aoi import to_crs

            features = [
                {
                    "type": "Feature",
                    "id": i,
                    "properties": {"fid": fid},
                    "geometry": mapping(to_crs(g, profile["crs"].to_string())),
                }
                for i, (fid, g) in enumerate(FIELDS)
            ]
            ops = ["mean", "variance", "stdev", "median", "quantile(q=0.05)", "quantile(q=0.95)", "min", "max", "count"]
            theirs = exact_extract(ds, JSONFeatureSource(features), ops, include_cols=["fid"], output="geojson")
    ref = {t["properties"]["fid"]: t["properties"] for t in theirs}
    assert len(results) == len(FIELDS)
    check_reprojection_is_independent_of_to_crs(FIELDS, profile["crs"].to_string())
    for item in results:
        mine, want = item["indexes"]["NDVI"], ref[item["field_id"]]
        for key, theirs_key in {
            "average": "mean",
            "variance": "variance",
            "std": "stdev",
            "min": "min",
            "max": "max",
            "count": "count",
        }.items():
            assert mine[key] == pytest.approx(want[theirs_key], rel=1e-6, abs=1e-9), (item["field_id"], key)
        # Quantiles are compared on tie-free values below: DNs are integers, so NDVI repeats, and the weighted
        # quantile of tied values with different weights depends on the order of the ties (pixel order
        # here, exactextract's unstable sort there; a lake's 95th percentile moved by 6e-4).


def check_reprojection_is_independent_of_to_crs(fields, crs: str) -> None:
    """Both sides above use the service's own reprojection (exact statistics need one outline to the
    last micrometre: a sub-millimetre shift of a boundary moves a weighted mean by 1e-5). So the
    reprojection itself is held against an independent one (pyproj on a 1e-4 degree densification):
    they enclose the same area but for a millionth of it (a tenth of a millimetre along the edges of
    an 80 ha parcel, what densifying at 100 m rather than 10 m steps leaves)."""
    from eotasks.raster.aoi import to_crs
    from tests.reference import polygon_in_crs

    for fid, g in fields:
        ours, theirs = to_crs(g, crs), polygon_in_crs(list(g.exterior.coords), crs)
        assert ours.symmetric_difference(theirs).area < 1e-6 * theirs.area, fid


def test_exact_quantiles_equal_exactextract_on_tie_free_values(tmp_path):
    """Float reflectance (no two pixels equal): median and percentiles equal exactextract's to 1e-6."""
    import rasterio
    from affine import Affine
    from exactextract.raster import NumPyRasterSource

    from eotasks.catalog.ingest import ingest_folder
    from eotasks.db import init_db
    from eotasks.raster.aoi import to_crs

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    init_db(url)
    rng = np.random.default_rng(11)
    transform, crs = Affine(10, 0, 460000, 0, -10, 4186200), "EPSG:32618"  # over part of the demo's parcels
    red, nir = rng.uniform(0.02, 0.2, (400, 400)), rng.uniform(0.2, 0.6, (400, 400))
    folder = tmp_path / "scene"
    folder.mkdir()
    for name, data in (("B04", red), ("B08", nir), ("SCL", np.full((400, 400), 4))):
        dtype = "uint8" if name == "SCL" else "float64"
        with rasterio.open(
            folder / f"{name}.tif",
            "w",
            driver="GTiff",
            width=400,
            height=400,
            count=1,
            dtype=dtype,
            crs=crs,
            transform=transform,
            nodata=None if name == "SCL" else -1.0,
        ) as dst:
            dst.write(data.astype(dtype), 1)
    record = ingest_folder(folder, "sentinel2l2a", view_id="S2L2A/18/S/VG/2023/6/1/0", scale=1.0, offset=0.0, url=url)
    fields = [(fid, g) for fid, g in FIELDS if to_crs(g, crs).within(shapely_box(460000, 4182200, 464000, 4186200))]
    assert len(fields) >= 5
    check_reprojection_is_independent_of_to_crs(fields, crs)
    options = StatsOptions(coverage="exact", percentiles=(10.0, 90.0), richer=True)
    results, _ = fields_statistics(record, ["NDVI"], fields, options)
    ndvi = (nir - red) / (nir + red)
    source = NumPyRasterSource(ndvi, xmin=460000, ymin=4182200, xmax=464000, ymax=4186200)
    feats = [
        {"type": "Feature", "id": i, "properties": {"fid": fid}, "geometry": mapping(to_crs(g, crs))}
        for i, (fid, g) in enumerate(fields)
    ]
    theirs = {
        t["properties"]["fid"]: t["properties"]
        for t in exact_extract(
            source,
            JSONFeatureSource(feats),
            ["mean", "variance", "median", "quantile(q=0.1)", "quantile(q=0.9)"],
            include_cols=["fid"],
            output="geojson",
        )
    }
    for item in results:
        mine, want = item["indexes"]["NDVI"], theirs[item["field_id"]]
        assert mine["average"] == pytest.approx(want["mean"], rel=1e-6)
        assert mine["variance"] == pytest.approx(want["variance"], rel=1e-6)
        assert mine["median"] == pytest.approx(want["median"], rel=1e-6)
        assert mine["percentiles"]["10"] == pytest.approx(want["quantile_10"], rel=1e-6)
        assert mine["percentiles"]["90"] == pytest.approx(want["quantile_90"], rel=1e-6)


def test_histograms_sum_to_count(demo):
    record = demo[0]
    for rule in ("centre", "exact"):
        options = StatsOptions(coverage=rule, histogram_edges=tuple(np.linspace(0, 0.8, 9)), richer=True)
        results, _ = fields_statistics(record, ["NDVI"], FIELDS, options)
        for item in results:
            s = item["indexes"]["NDVI"]
            h = s["histogram"]
            assert sum(h["counts"]) + h["underflow"] + h["overflow"] == pytest.approx(s["count"], rel=1e-9)
