"""SPEC §6 end to end in plain functions, on the synthetic demo series (known values, real clouds in
its SCL band): a 10-day median composite per field equals numpy's per-pixel nanmedian over the
clear observations of each interval, then numpy's statistics over the field's pixel centres."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.enums import Resampling
from shapely.geometry import shape

from eotasks.aggregate import common_grid, interval_statistics
from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.scenes import list_scenes
from eotasks.intervals import intervals
from eotasks.settings import reset_settings
from eotasks.stats_answer import TimeSeriesAnswer
from eotasks.timeseries import Field, StatsOptions
from tests.reference import numpy_stats, polygon_in_crs, reproject_onto

SCL_UNUSABLE = (0, 1)


@pytest.fixture
def series(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    generate_demo(tmp_path / "demo", s2_scenes=6, landsat_scenes=0, s2_every_days=4)
    yield list_scenes("sentinel2l2a")
    monkeypatch.delenv("EOTASKS_DATABASE_URL")
    reset_settings()


def clear_ndvi(record) -> tuple[np.ndarray, rasterio.Affine, str]:
    """NDVI of one scene with numpy, NaN where SCL is fill/no data or high-probability cloud (level 1)."""
    assets = record.assets

    def physical(band: str) -> tuple[np.ndarray, rasterio.Affine, str]:
        with rasterio.open(assets[band]["href"]) as src:
            dn = src.read(1).astype(np.float64)
            transform, crs = src.transform, src.crs.to_string()
        values = dn * assets[band]["scale"] + assets[band]["offset"]
        values[dn == assets[band]["nodata"]] = np.nan
        return values, transform, crs

    red, transform, crs = physical("B04")
    nir, _, _ = physical("B08")
    with rasterio.open(assets["SCL"]["href"]) as src:  # 20 m, onto NDVI's 10 m pixels (nearest)
        scl = src.read(1, out_shape=red.shape, resampling=Resampling.nearest)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
    ndvi[np.isin(scl, SCL_UNUSABLE) | (scl == 9)] = np.nan
    return ndvi, transform, crs


def test_a_ten_day_median_per_field_equals_numpy(series):
    records = sorted(series, key=lambda r: r.date)
    assert len(records) == 6
    fields = [Field(f["properties"]["id"], shape(f["geometry"])) for f in demo_fields()[:3]]
    start, end = records[0].date, records[-1].date
    spans = intervals(start, end, "P10D", "shorten")
    grid = common_grid(records, ["sentinel2l2a"], ["NDVI"], fields)
    options = StatsOptions(cloud_masking_level=1, exclude_cover_pixels=True)
    answer = TimeSeriesAnswer("NDVI", {f.id: i for i, f in enumerate(fields)}, "json", (), 0)
    for first, last in spans:
        members = [r for r in records if first <= r.date <= last]
        answer.add(interval_statistics(first.isoformat(), last.isoformat(), members, ["NDVI"], fields, grid, options, "median"))
    got = answer.as_dict()
    checked = 0
    for first, last in spans:
        members = [r for r in records if first <= r.date <= last]
        planes = [clear_ndvi(r) for r in members]
        transform, crs = planes[0][1], planes[0][2]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a pixel never clear in the interval
            median = np.nanmedian(np.stack([p[0] for p in planes]), axis=0)
        height, width = median.shape
        cx = transform.c + (np.arange(width) + 0.5) * transform.a
        cy = transform.f + (np.arange(height) + 0.5) * transform.e
        gx, gy = np.meshgrid(cx, cy)
        for f in fields:
            inside = shapely.contains_xy(polygon_in_crs(list(f.shape.exterior.coords), crs), gx, gy)
            values = median[inside]
            item = next(i for i in got["result"] if i["field_id"] == f.id and i["interval"][0] == first.isoformat())
            assert item["interval"] == [first.isoformat(), last.isoformat()] and item["date"] == first.isoformat()
            assert item["scenes"] == [r.scene_id for r in members]
            clear = values[~np.isnan(values)]
            assert item["count"] == clear.size and item["nodata_count"] == values.size - clear.size
            assert item["cloud"] == pytest.approx(100.0 * (values.size - clear.size) / values.size, abs=1e-9)
            for key, want in numpy_stats(clear).items():
                assert item[key] == pytest.approx(want, rel=1e-9, abs=1e-12), (key, f.id, first)
            checked += 1
    assert checked == 3 * len(spans) and got["errors"] == []


def test_an_interval_without_scenes_or_clear_pixels_is_in_errors(series):
    records = sorted(series, key=lambda r: r.date)
    fields = [Field(None, shape(demo_fields()[0]["geometry"]))]
    grid = common_grid(records, ["sentinel2l2a"], ["NDVI"], fields)
    empty = interval_statistics("2023-12-01", "2023-12-10", [], ["NDVI"], fields, grid, StatsOptions(), "mean")
    assert not empty.rows and empty.skipped[0].error == "No scene in the interval"
    assert empty.skipped[0].scene.date == "2023-12-01"

    # Scenes cloudier than the threshold over the field are left out before compositing: the
    # interval's scenes are those numpy finds at or under it (SCL 9 of the usable pixels).
    def cloud(record) -> float:
        with rasterio.open(record.assets["B04"]["href"]) as red, rasterio.open(record.assets["SCL"]["href"]) as src:
            scl = src.read(1, out_shape=(red.height, red.width), resampling=Resampling.nearest)
            transform, crs = red.transform, red.crs.to_string()
        cx = transform.c + (np.arange(scl.shape[1]) + 0.5) * transform.a
        cy = transform.f + (np.arange(scl.shape[0]) + 0.5) * transform.e
        inside = shapely.contains_xy(polygon_in_crs(list(fields[0].shape.exterior.coords), crs), *np.meshgrid(cx, cy))
        usable = inside & ~np.isin(scl, SCL_UNUSABLE)
        return 100.0 * (usable & (scl == 9)).sum() / usable.sum()

    clouds = {r.scene_id: cloud(r) for r in records}
    threshold = sorted(clouds.values())[len(clouds) // 2]
    strict = StatsOptions(cloud_masking_level=1, max_cloud_cover_in_aoi=threshold)
    out = interval_statistics("2023-01-01", "2023-12-31", records, ["NDVI"], fields, grid, strict, "mean")
    kept = [r.scene_id for r in records if clouds[r.scene_id] <= threshold]
    assert 0 < len(kept) < len(records) and list(out.rows[0].scene.scenes) == kept
    nothing = StatsOptions(max_cloud_cover_in_aoi=min(clouds.values()) - 1e-6)
    if nothing.max_cloud_cover_in_aoi >= 0:
        out = interval_statistics("2023-01-01", "2023-12-31", records, ["NDVI"], fields, grid, nothing, "mean")
        assert not out.rows and out.skipped[0].error == "No scene of the interval could be used"


def physical_ndvi(record, red: str, nir: str):
    """NDVI of a scene on its own grid with numpy (the catalogue's scale and offset), NaN where a
    band has no data; with the band files' transform and CRS."""

    def physical(band: str):
        with rasterio.open(record.assets[band]["href"]) as src:
            dn = src.read(1).astype(np.float64)
            transform, crs, shape_ = src.transform, src.crs.to_string(), (src.height, src.width)
        values = dn * record.assets[band]["scale"] + record.assets[band]["offset"]
        values[dn == record.assets[band]["nodata"]] = np.nan
        return values, transform, crs, shape_

    r, transform, crs, shape_ = physical(red)
    n, _, _, _ = physical(nir)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n - r) / (n + r), transform, crs, shape_


def test_two_sensors_composite_on_the_first_sensors_grid(sqlite_url, tmp_path, monkeypatch):
    """Sentinel-2 (10 m) and Landsat 8 (30 m) scenes of one interval: each Landsat NDVI is warped
    (nearest) onto the grid of the earliest Sentinel-2 scene, and the max composite equals numpy's
    nanmax over the reprojected planes."""
    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    try:
        generate_demo(tmp_path / "demo", s2_scenes=2, landsat_scenes=2, s2_every_days=5, landsat_every_days=5)
        records = sorted(list_scenes("sentinel2l2a") + list_scenes("landsat8"), key=lambda r: (r.date, r.view_id))
        fields = [Field(None, shape(demo_fields()[1]["geometry"]))]
        grid = common_grid(records, ["sentinel2l2a", "landsat8"], ["NDVI"], fields)
        first_s2 = min((r for r in records if r.sensor == "sentinel2l2a"), key=lambda r: r.date)
        with rasterio.open(first_s2.assets["B04"]["href"]) as src:
            assert grid.crs == src.crs.to_string() and grid.resolution == (10.0, 10.0)
        options = StatsOptions(exclude_cover_pixels=False)
        out = interval_statistics("2023-01-01", "2023-12-31", records, ["NDVI"], fields, grid, options, "max")
        [row] = out.rows
        planes = []
        for r in records:
            if r.sensor == "sentinel2l2a":
                ndvi, transform, crs, shape_ = physical_ndvi(r, "B04", "B08")
                with rasterio.open(r.assets["SCL"]["href"]) as src:
                    scl = src.read(1, out_shape=shape_, resampling=Resampling.nearest)
                ndvi[np.isin(scl, SCL_UNUSABLE)] = np.nan
            else:
                ndvi, transform, crs, shape_ = physical_ndvi(r, "B4", "B5")
                with rasterio.open(r.assets["QA_PIXEL"]["href"]) as src:
                    qa = src.read(1)
                ndvi[(qa & 1) == 1] = np.nan  # designated fill
            planes.append(reproject_onto(ndvi, transform, crs, grid.transform, grid.crs, grid.shape, Resampling.nearest))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            composite_max = np.nanmax(np.stack(planes), axis=0)
        t = grid.transform
        cx = t.c + (np.arange(grid.width) + 0.5) * t.a
        cy = t.f + (np.arange(grid.height) + 0.5) * t.e
        inside = shapely.contains_xy(polygon_in_crs(list(fields[0].shape.exterior.coords), grid.crs), *np.meshgrid(cx, cy))
        values = composite_max[inside]
        clear = values[~np.isnan(values)]
        assert row.scene.scenes == tuple(r.scene_id for r in records)
        stats = row.indexes["NDVI"]
        assert stats["count"] == clear.size > 100
        for key, want in numpy_stats(clear).items():
            assert stats[key] == pytest.approx(want, rel=1e-9, abs=1e-12), key
    finally:
        monkeypatch.delenv("EOTASKS_DATABASE_URL")
        reset_settings()


def test_composites_on_a_requested_grid_equal_numpy_then_reproject(series):
    """SPEC §5 with §6: the composites are computed on the request's grid (EPSG:4326 at 0.0001°,
    -tap), each scene's clear NDVI warped onto it (nearest), equal to numpy + rasterio's reproject."""
    from eotasks.models import MtStatsParams
    from flows.mt_stats import composite_grid
    from tests.test_output_grid import centres_inside, tap_grid

    records = sorted(series, key=lambda r: (r.date, r.view_id))[:3]
    feature = demo_fields()[2]
    fields = [Field(None, shape(feature["geometry"]))]
    params = MtStatsParams(
        date_start="2023-01-01",
        date_end="2023-01-31",
        bm_type="NDVI",
        geometry=feature["geometry"],
        crs="EPSG:4326",
        resolution=0.0001,
        aggregation={"period": "P1M", "composite": "median"},
    )
    grid = composite_grid(params, records, ["sentinel2l2a"], ["NDVI"], fields)
    transform, width, height = tap_grid(fields[0].shape.bounds, 0.0001)
    assert grid.crs == "EPSG:4326" and (grid.width, grid.height) == (width, height)
    out = interval_statistics("2023-01-01", "2023-01-31", records, ["NDVI"], fields, grid, StatsOptions(), "median")
    planes = []
    for r in records:
        ndvi, src_transform, crs = clear_ndvi(r)
        planes.append(reproject_onto(ndvi, src_transform, crs, transform, "EPSG:4326", (height, width), Resampling.nearest))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(np.stack(planes), axis=0)
    values = median[centres_inside(fields[0].shape, transform, width, height)]
    clear = values[~np.isnan(values)]
    [row] = out.rows
    assert row.indexes["NDVI"]["count"] == clear.size > 100
    for key, want in numpy_stats(clear).items():
        assert row.indexes["NDVI"][key] == pytest.approx(want, rel=1e-9, abs=1e-12), key


def per_scene_on_requested_grid(series, features):
    """(fields, grid transform, shape, [(record, service outcome, NDVI plane, SCL plane)]) for the
    first three scenes on EPSG:4326 at 0.0001° (-tap): the service's per-scene path on the
    request's grid, and numpy's clear NDVI and the SCL classes warped onto it with rasterio (nearest)."""
    from eotasks.models import MtStatsParams
    from flows.mt_stats import composite_grid
    from tasks.stats import statistics_of_scene
    from tests.test_output_grid import tap_grid

    records = sorted(series, key=lambda r: (r.date, r.view_id))[:3]
    fields = [Field(f["properties"]["id"] if len(features) > 1 else None, shape(f["geometry"])) for f in features]
    area = (
        {"fields": {"type": "FeatureCollection", "features": features}}
        if len(features) > 1
        else {"geometry": features[0]["geometry"]}
    )
    params = MtStatsParams(
        date_start="2023-01-01", date_end="2023-01-31", bm_type="NDVI", crs="EPSG:4326", resolution=0.0001, **area
    )
    grid = composite_grid(params, records, ["sentinel2l2a"], ["NDVI"], fields)
    transform, width, height = tap_grid(shapely.union_all([f.shape for f in fields]).bounds, 0.0001)
    assert grid.crs == "EPSG:4326" and (grid.width, grid.height) == (width, height)
    options = StatsOptions(cloud_masking_level=1, exclude_cover_pixels=True, richer=True)
    out = []
    for record in records:
        outcome = statistics_of_scene(record, ["NDVI"], fields, options, 1, grid, "nearest")
        ndvi, src_transform, crs = clear_ndvi(record)
        plane = reproject_onto(ndvi, src_transform, crs, transform, "EPSG:4326", (height, width), Resampling.nearest)
        with rasterio.open(record.assets["SCL"]["href"]) as src:
            scl = reproject_onto(
                src.read(1).astype(np.float64),
                src.transform,
                src.crs,
                transform,
                "EPSG:4326",
                (height, width),
                Resampling.nearest,
            )
        out.append((record, outcome, plane, scl))
    return fields, transform, (height, width), out


def field_reference(f, transform, shape_hw, plane, scl):
    """(clear values, all values, cloud %) of one field's pixel centres on the warped planes."""
    from tests.test_output_grid import centres_inside

    inside = centres_inside(f.shape, transform, shape_hw[1], shape_hw[0])
    values, classes = plane[inside], scl[inside]
    usable = ~np.isnan(classes) & ~np.isin(classes, SCL_UNUSABLE)
    return values[~np.isnan(values)], values, 100.0 * (usable & (classes == 9)).sum() / usable.sum()


def check_row(row, clear, values, cloud, rel: float, abs_: float) -> None:
    """One field's item against numpy: cloud, count and nodata exact, the statistics within ``rel``."""
    assert row.cloud == pytest.approx(cloud, abs=1e-9)
    stats = row.indexes["NDVI"]
    assert stats["count"] == clear.size > 100
    assert stats["nodata_count"] == values.size - clear.size
    for key, want in numpy_stats(clear).items():
        assert stats[key] == pytest.approx(want, rel=rel, abs=abs_), key


def test_per_scene_statistics_on_a_requested_grid_equal_numpy_then_reproject(series):
    """SPEC §5 without §6, one AOI: each scene's statistics on the request's grid, its clear NDVI
    warped onto it (nearest), equal to numpy + rasterio's reproject pixel for pixel, and its cloud
    the flagged share of the AOI's classified pixel centres on that grid."""
    fields, transform, shape_hw, scenes = per_scene_on_requested_grid(series, [demo_fields()[2]])
    for _, outcome, plane, scl in scenes:
        assert not outcome.skipped
        [row] = outcome.rows
        check_row(row, *field_reference(fields[0], transform, shape_hw, plane, scl), rel=1e-9, abs_=1e-12)


def test_per_scene_statistics_of_scattered_fields_on_a_requested_grid(series):
    """The same for fields: each field's pixels are read in its own window of the grid. GDAL's warp
    places a pixel within 1/8 of a source pixel of its exact position (gdalwarp's error threshold)
    along each warped row, so a field's window may take a neighbour's value where a warp of the
    whole grid does not: counts, nodata and cloud are exact, the values within that."""
    fields, transform, shape_hw, scenes = per_scene_on_requested_grid(series, demo_fields()[:2])
    compared = 0
    for _, outcome, plane, scl in scenes:
        assert not outcome.skipped
        rows = {r.field_id: r for r in outcome.rows}
        for f in fields:
            check_row(rows[f.id], *field_reference(f, transform, shape_hw, plane, scl), rel=1e-3, abs_=1e-4)
            compared += 1
    assert compared == 6
