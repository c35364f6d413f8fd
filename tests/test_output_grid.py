"""SPEC §5, the output grid, on the real Sentinel-2 crop: what the flows' own functions give (crop,
evaluate, warp, the AOI on the output grid) against rasterio's reproject of independently computed
values onto an independently built target-aligned grid; sizes; budgets refused before any read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from fastapi.testclient import TestClient
from rasterio.enums import Resampling
from shapely.geometry import Polygon

from eotasks.catalog.ingest import ingest_folder
from eotasks.catalog.scenes import get_scene
from eotasks.db import create_api_key
from eotasks.models import BandmathParams, LbeParams
from eotasks.raster.indices import bands_of
from eotasks.settings import reset_settings
from flows._common import programs_for
from tasks.crop import crop_scene
from tasks.warp import onto_grid
from tests.conftest import CROP_DIR, SAMPLE_VIEW_ID
from tests.reference import polygon_in_crs, reproject_onto
from tests.test_e2e import GEOMETRY, TRIANGLE


@pytest.fixture
def catalogue(sqlite_url, monkeypatch):
    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    ingest_folder(CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A")
    yield get_scene(SAMPLE_VIEW_ID)
    monkeypatch.delenv("EOTASKS_DATABASE_URL")
    reset_settings()


def tap_grid(bounds, res):
    """gdalwarp -tap: pixel edges on multiples of the resolution, the smallest such grid covering the bounds."""
    minx, miny, maxx, maxy = bounds
    x0, y0 = math.floor(minx / res) * res, math.floor(miny / res) * res
    x1, y1 = math.ceil(maxx / res) * res, math.ceil(maxy / res) * res
    return Affine(res, 0, x0, 0, -res, y1), round((x1 - x0) / res), round((y1 - y0) / res)


def centres_inside(polygon, transform, width, height):
    cx = transform.c + (np.arange(width) + 0.5) * transform.a
    cy = transform.f + (np.arange(height) + 0.5) * transform.e
    gx, gy = np.meshgrid(cx, cy)
    return shapely.contains_xy(polygon, gx, gy)


def bandmath_on_grid(scene, **grid):
    params = BandmathParams(view_id=SAMPLE_VIEW_ID, bm_type="NDVI", geometry=GEOMETRY, **grid)
    programs = programs_for(scene, params.bm_type)
    cut = crop_scene(scene, params, [bands_of(programs)], "bandmath")
    values = cut.rasters[0].evaluate(programs, np.float32)
    assert cut.output is not None
    return onto_grid(values, cut.output, params.resample, cut.aoi, params.mask_outside)


def test_bandmath_ndvi_in_epsg_4326_equals_numpy_then_reproject_then_the_polygon(catalogue):
    out = bandmath_on_grid(catalogue, crs="EPSG:4326", resolution=0.0001, resample="nearest")
    # Independently: NDVI of the whole crop with numpy, reproject onto the -tap grid, mask by the polygon.
    with rasterio.open(CROP_DIR / "B04.tif") as red, rasterio.open(CROP_DIR / "B08.tif") as nir:
        r, n = red.read(1) / 10000.0, nir.read(1) / 10000.0
        src_transform, src_crs = red.transform, red.crs
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (n - r) / (n + r)
    polygon = Polygon(TRIANGLE)
    transform, width, height = tap_grid(polygon.bounds, 0.0001)
    want = reproject_onto(ndvi, src_transform, src_crs, transform, "EPSG:4326", (height, width), Resampling.nearest)
    want[~centres_inside(polygon, transform, width, height)] = np.nan
    assert out.grid.crs == "EPSG:4326" and (out.grid.width, out.grid.height) == (width, height)
    assert out.grid.transform.almost_equals(transform, precision=1e-9)
    got = out.values[0]
    assert np.array_equal(np.isnan(got), np.isnan(want)) and (~np.isnan(want)).sum() > 1000
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)].astype(np.float32), atol=1e-6)


def test_lbe_b04_at_20_m_average_equals_reproject_with_its_nodata(catalogue):
    params = LbeParams(view_id=SAMPLE_VIEW_ID, bands=["B04"], geometry=GEOMETRY, resolution=20, resample="average")
    cut = crop_scene(catalogue, params, [["B04"]], "lbe", scaled=False)
    out = onto_grid(cut.rasters[0], cut.output, "average", cut.aoi, params.mask_outside, stored=True)
    with rasterio.open(CROP_DIR / "B04.tif") as src:
        dn, src_transform, crs, nodata = src.read(1), src.transform, src.crs, src.nodata or 0
    polygon = polygon_in_crs(TRIANGLE, crs)
    transform, width, height = tap_grid(polygon.bounds, 20)
    want = reproject_onto(dn, src_transform, crs, transform, crs, (height, width), Resampling.average, nodata, np.uint16)
    inside = centres_inside(polygon, transform, width, height)
    want[~inside] = nodata
    got = np.where(np.isnan(out.values[0]), nodata, out.values[0])
    assert out.grid.transform.almost_equals(transform, precision=1e-6) and got.shape == want.shape
    assert (want != nodata).sum() > 500
    assert np.array_equal(got.astype(np.uint16), want), np.abs(got.astype(int) - want.astype(int)).max()


def test_width_and_height_give_exactly_that_many_pixels(catalogue):
    out = bandmath_on_grid(catalogue, crs=3857, width=123, height=77)
    assert (out.grid.width, out.grid.height) == (123, 77) and out.grid.crs == "EPSG:3857"
    only_width = bandmath_on_grid(catalogue, width=50)
    assert only_width.grid.width == 50 and only_width.grid.crs == catalogue.crs  # the other from the aspect ratio
    assert abs(only_width.grid.resolution[0] / only_width.grid.resolution[1] - 1) < 0.05


def test_without_the_new_parameters_the_answer_is_the_scene_grid_as_before(catalogue):
    params = BandmathParams(view_id=SAMPLE_VIEW_ID, bm_type="NDVI", geometry=GEOMETRY)
    cut = crop_scene(catalogue, params, [["B04", "B08"]], "bandmath")
    assert cut.output is None and cut.rasters[0].grid.resolution == (10.0, 10.0)
    # Only a crs: the native pixel count kept (about 10 m in degrees at this latitude).
    out = bandmath_on_grid(catalogue, crs="EPSG:4326")
    assert 0.8e-4 < out.grid.resolution[0] < 1.3e-4 and 0.8e-4 < out.grid.resolution[1] < 1.3e-4


def test_a_grid_over_the_budget_is_a_400_before_any_read(catalogue, monkeypatch):
    from gateway.app import create_app
    from tests.test_gateway import FakeRuns

    runs = FakeRuns()
    key = create_api_key("grid")[0]
    with TestClient(create_app(runs)) as client:

        def post(**grid):
            body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY, **grid}}
            return client.post("/api", params={"api_key": key}, json=body)

        before = len(runs.created)
        r = post(crs="EPSG:4326", resolution=1e-8)
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.resolution", r.text
        assert "more than the limit" in r.json()["error"]
        r = post(crs="EPSG:4326", resolution=1e-320)  # so fine the pixel count is infinite
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.resolution", r.text
        r = post(resolution=10, width=100)
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.resolution", r.text
        r = post(crs="WGS84")
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.crs", r.text
        r = post(width=20_000)
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.width", r.text
        assert len(runs.created) == before  # nothing was started
        assert post(crs="EPSG:4326", resolution=0.0001).status_code == 202


def test_jpeg_on_a_grid_of_its_own_is_a_georeferenced_picture_of_that_grid(catalogue):
    from rasterio.io import MemoryFile

    from eotasks.models import JpegParams
    from tasks.render import render_picture

    params = JpegParams(
        view_id=SAMPLE_VIEW_ID, bm_type="B04,B03,B02", geometry=GEOMETRY, format="tiff", crs="EPSG:4326", width=200
    )
    programs = programs_for(catalogue, params.bm_type)
    cut = crop_scene(catalogue, params, [bands_of(programs)], "jpeg")
    data = render_picture(cut.rasters[0].evaluate(programs, np.float32), cut.aoi, params, cut.output)
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.crs.to_epsg() == 4326 and ds.width == 200 and ds.count == 4 and ds.dtypes[0] == "uint8"
        alpha = ds.read(4) > 0
        transform, width, height = ds.transform, ds.width, ds.height
    minx, miny, maxx, maxy = Polygon(TRIANGLE).bounds
    assert transform.c == pytest.approx(minx) and transform.f == pytest.approx(maxy)
    assert width * transform.a == pytest.approx(maxx - minx) and height == round(200 * (maxy - miny) / (maxx - minx))
    # Transparent outside the polygon (and beyond the crop, which the triangle overhangs).
    inside = centres_inside(Polygon(TRIANGLE), transform, width, height)
    assert not (alpha & ~inside).any() and alpha.sum() > 0.5 * inside.sum()
    # Without the new parameters a jpeg is drawn as always: EPSG:3857.
    plain = JpegParams(view_id=SAMPLE_VIEW_ID, bm_type="B04,B03,B02", geometry=GEOMETRY, format="tiff")
    cut = crop_scene(catalogue, plain, [bands_of(programs)], "jpeg")
    with MemoryFile(render_picture(cut.rasters[0].evaluate(programs, np.float32), cut.aoi, plain)) as mem, mem.open() as ds:
        assert ds.crs.to_epsg() == 3857


def test_mt_stats_checks_its_output_grid_with_or_without_aggregation(catalogue):
    from gateway.app import create_app
    from tests.test_gateway import FakeRuns

    key = create_api_key("mt-grid")[0]
    with TestClient(create_app(FakeRuns())) as client:

        def post(**more):
            params = {"date_start": "2023-01-01", "date_end": "2023-03-31", "bm_type": "NDVI", "geometry": GEOMETRY, **more}
            return client.post("/api", params={"api_key": key}, json={"type": "mt_stats", "params": params})

        monthly = {"period": "month", "composite": "mean"}
        for tiny in (1e-8, 1e-320):
            for more in ({"aggregation": monthly}, {}):  # per interval, or per scene (SPEC §5)
                r = post(crs="EPSG:4326", resolution=tiny, **more)
                assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.resolution", r.text
        r = post(aggregation={"period": "month", "last_interval": "extend"})
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.aggregation.last_interval", r.text
        r = post(aggregation={"period": "P0D"})
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.aggregation.period", r.text
        # Valid: past validation and budget (the fake Prefect has no mt_stats deployment).
        for more in ({"aggregation": monthly}, {}, {"resolution": 0.0001}):
            r = post(crs="EPSG:4326", **more)
            assert r.status_code == 400 and r.json()["details"][0]["field"] == "type", r.text
