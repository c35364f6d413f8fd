"""The openEO back-end (SPEC §8) driven by the openEO Python client, unchanged, against a real gateway,
Prefect server and warm worker: the client's tutorial workflows, with answers equal to numpy and
rasterio on the same pixels, a batch job, the metadata calls and openEO's errors."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import numpy as np
import openeo
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from shapely.geometry import box, shape
from sqlalchemy import text

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.scenes import get_scene, list_scenes
from eotasks.db import create_api_key, get_engine
from eotasks.raster.aoi import centre_inside, to_crs
from eotasks.raster.grid import Grid
from tests.conftest import SAMPLE_VIEW_ID
from tests.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(prefect_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("openeo-stack")
    # Small chunks, so a batch job over the demo area runs in several (tests of chunking below).
    extra = {"EOTASKS_IO_RETRIES": "1", "EOTASKS_OPENEO_CHUNK_VALUES": "300000"}
    s = Stack(root, prefect_server, extra, deployments=["openeo/eotasks"])
    generate_demo(root / "demo", s2_scenes=6, landsat_scenes=0, url=s.db_url, s2_every_days=4)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def con(stack):
    return openeo.connect(f"{stack.base}/openeo/1.2").authenticate_basic("e2e", stack.key)


def sample(stack):
    return get_scene(SAMPLE_VIEW_ID, url=stack.db_url)


def inner_extent(record, a=0.25, b=0.65) -> dict[str, float]:
    w, s, e, n = record.west, record.south, record.east, record.north
    return {"west": w + (e - w) * a, "east": w + (e - w) * b, "south": s + (n - s) * a, "north": s + (n - s) * b}


def lattice(href: str, extent: dict[str, float]) -> tuple[Grid, rasterio.windows.Window]:
    """The band file's pixels that meet the lon/lat extent (its bounds in the file's CRS): what
    load_collection reads, covering the whole extent."""
    with rasterio.open(href) as src:
        minx, miny, maxx, maxy = transform_bounds(
            "EPSG:4326", src.crs, extent["west"], extent["south"], extent["east"], extent["north"]
        )
        t = src.transform
        c0, c1 = math.floor((minx - t.c) / t.a), math.ceil((maxx - t.c) / t.a) - 1
        r0, r1 = math.floor((maxy - t.f) / t.e), math.ceil((miny - t.f) / t.e) - 1
        window = rasterio.windows.Window(c0, r0, c1 - c0 + 1, r1 - r0 + 1)
        return Grid(src.crs.to_string(), src.window_transform(window), window.width, window.height), window


def dn(record, band: str, window) -> np.ndarray:
    asset = record.assets[band]
    with rasterio.open(asset["href"]) as src:  # beyond the file: no data, as load_collection gives
        values = src.read(1, window=window, boundless=True, fill_value=asset.get("nodata") or 0).astype(np.float64)
    values[values == (asset.get("nodata") or 0)] = np.nan
    return values


def test_metadata_calls_of_the_client(con):
    ids = [c["id"] for c in con.list_collections()]
    assert {"SENTINEL2_L1C", "SENTINEL2_L2A", "LANDSAT8_L2"} <= set(ids)
    described = con.describe_collection("SENTINEL2_L2A")
    assert described["cube:dimensions"]["bands"]["values"][:4] == ["B01", "B02", "B03", "B04"]
    assert {b["name"]: b.get("common_name") for b in described["summaries"]["eo:bands"]}["B08"] == "nir"
    processes = {p["id"]: p for p in con.list_processes()}
    for pid in ("load_collection", "save_result", "reduce_dimension", "apply", "ndvi", "mask", "aggregate_spatial"):
        assert pid in processes and processes[pid]["parameters"], pid
    formats = con.list_output_formats()
    assert {"GTiff", "netCDF", "JSON", "CSV", "PNG"} <= set(formats)


def test_the_basics_tutorial_evi_max_time_equals_numpy(stack, con, tmp_path):
    """openEO's "basics" tutorial: EVI from B02/B04/B08 x 0.0001, max over time, a GeoTIFF."""
    record = sample(stack)
    extent = inner_extent(record)
    cube = con.load_collection(
        "SENTINEL2_L1C", spatial_extent=extent, temporal_extent=["2020-06-01", "2020-07-01"], bands=["B02", "B04", "B08"]
    )
    blue, red, nir = (cube.band(b) * 0.0001 for b in ("B02", "B04", "B08"))
    evi = 2.5 * (nir - red) / (nir + 6.0 * red - 7.5 * blue + 1.0)
    out = tmp_path / "evi.tiff"
    evi.max_time().download(out)
    grid, window = lattice(record.assets["B04"]["href"], extent)
    b, r, n = (dn(record, band, window) * 0.0001 for band in ("B02", "B04", "B08"))  # baseline 02.xx: no offset
    want = 2.5 * (n - r) / (n + 6.0 * r - 7.5 * b + 1.0)
    with rasterio.open(out) as ds:
        assert ds.crs.to_string() == grid.crs and ds.transform.almost_equals(grid.transform) and ds.shape == grid.shape
        got = ds.read(1).astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isfinite(got).sum() > 1000
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)  # the file is float32


def test_scl_mask_with_resample_cube_spatial_equals_numpy(stack, con, tmp_path):
    """The client's cloud-masking recipe: SCL (20 m) resampled onto the 10 m bands, classes 3, 8, 9
    masked, NDVI of each date, then the mean over time."""
    records = sorted(list_scenes("sentinel2l2a", url=stack.db_url), key=lambda r: r.date)[:3]
    first = records[0]
    extent = inner_extent(first, 0.2, 0.8)
    temporal = [records[0].date.isoformat(), (records[-1].date.toordinal() + 1)]
    import datetime as dt

    temporal[1] = dt.date.fromordinal(temporal[1]).isoformat()
    bands = con.load_collection("SENTINEL2_L2A", spatial_extent=extent, temporal_extent=temporal, bands=["B04", "B08"])
    scl = con.load_collection("SENTINEL2_L2A", spatial_extent=extent, temporal_extent=temporal, bands=["SCL"]).band("SCL")
    cloud = ((scl == 3) | (scl == 8) | (scl == 9)).resample_cube_spatial(bands)
    masked = bands.mask(cloud)
    ndvi = masked.ndvi(nir="B08", red="B04")
    out = tmp_path / "ndvi.tif"
    ndvi.mean_time().download(out)
    grid, window = lattice(first.assets["B04"]["href"], extent)
    planes = []
    for rec in records:
        red = dn(rec, "B04", window) + rec.assets["B04"]["offset"] * 1e4
        nir = dn(rec, "B08", window) + rec.assets["B08"]["offset"] * 1e4
        with rasterio.open(rec.assets["SCL"]["href"]) as src:
            classes = np.zeros(grid.shape)
            reproject(
                rasterio.band(src, 1), classes, dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest
            )
        v = (nir - red) / (nir + red)
        v[np.isin(classes, (3, 8, 9))] = np.nan
        planes.append(v)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmean(np.stack(planes), axis=0)
    with rasterio.open(out) as ds:
        got = ds.read(1).astype(np.float64)
        assert ds.shape == grid.shape
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isfinite(got).sum() > 100
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)


def test_aggregate_spatial_mean_of_fields_to_json_and_csv(stack, con, tmp_path):
    records = sorted(list_scenes("sentinel2l2a", url=stack.db_url), key=lambda r: r.date)[:2]
    fields = {"type": "FeatureCollection", "features": demo_fields()[:3]}
    union = box(*shape(fields["features"][0]["geometry"]).union(shape(fields["features"][2]["geometry"])).bounds)
    extent = dict(zip(("west", "south", "east", "north"), union.buffer(0.002).bounds, strict=True))
    import datetime as dt

    temporal = [records[0].date.isoformat(), (records[-1].date + dt.timedelta(days=1)).isoformat()]
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=extent, temporal_extent=temporal, bands=["B04", "B08"])
    stats = cube.aggregate_spatial(geometries=fields, reducer="mean")
    out_json, out_csv = tmp_path / "means.json", tmp_path / "means.csv"
    stats.download(out_json, format="JSON")
    stats.download(out_csv, format="CSV")
    got = json.loads(out_json.read_text())
    grid, window = lattice(records[0].assets["B04"]["href"], extent)
    assert sorted(got) == [f"{r.date.isoformat()}T00:00:00Z" for r in records]
    rows = out_csv.read_text().strip().splitlines()
    assert rows[0] == "date,feature_index,B04,B08" and len(rows) == 1 + 2 * 3
    for rec in records:
        label = f"{rec.date.isoformat()}T00:00:00Z"
        for k, feature in enumerate(fields["features"]):
            inside = centre_inside(to_crs(shape(feature["geometry"]), grid.crs), grid)
            for j, band in enumerate(("B04", "B08")):
                values = dn(rec, band, window) + rec.assets[band]["offset"] * 1e4
                want = np.nanmean(values[inside])
                assert got[label][k][j] == pytest.approx(want, rel=1e-12)
                csv_row = next(r for r in rows[1:] if r.startswith(f"{label},{k},"))
                assert float(csv_row.split(",")[2 + j]) == pytest.approx(want, rel=1e-12)


def test_a_batch_job_through_execute_batch(stack, con, tmp_path):
    record = sample(stack)
    extent = inner_extent(record)
    cube = con.load_collection(
        "SENTINEL2_L1C", spatial_extent=extent, temporal_extent=["2020-06-01", "2020-07-01"], bands=["B04", "B08"]
    )
    job = cube.ndvi().save_result(format="netCDF").create_job(title="ndvi batch")
    assert job.status() == "created"
    job.start_and_wait(max_poll_interval=1, print=lambda *a, **k: None)
    assert job.status() == "finished"
    paths = job.get_results().download_files(tmp_path / "job")
    [nc] = [p for p in paths if p.suffix == ".nc"]
    import xarray as xr

    _, window = lattice(record.assets["B04"]["href"], extent)
    red, nir = dn(record, "B04", window), dn(record, "B08", window)
    with xr.open_dataset(nc, engine="h5netcdf") as ds:
        [name] = [v for v in ds.data_vars if v != "crs"]
        got = ds[name].values.astype(np.float64).squeeze()
    assert np.allclose(got, (nir - red) / (nir + red), rtol=1e-6, atol=1e-7, equal_nan=True)
    logs = job.logs()
    assert any("ndvi" in (entry.get("message") or "") or entry.get("level") for entry in logs)
    listed = [j["id"] for j in con.list_jobs()]
    assert job.job_id in listed
    # Another key does not see this job.
    other, _ = create_api_key("other", url=stack.db_url)
    con2 = openeo.connect(f"{stack.base}/openeo/1.2").authenticate_basic("other", other)
    with pytest.raises(openeo.rest.OpenEoApiError) as err:
        con2.job(job.job_id).describe()
    assert err.value.http_status_code == 404 and err.value.code == "JobNotFound"


def test_openeo_errors(stack, con):
    base = f"{stack.base}/openeo/1.2"
    r = httpx.get(f"{base}/credentials/basic", auth=("e2e", "wrong"))
    assert r.status_code == 403 and r.json()["code"] == "CredentialsInvalid"
    assert httpx.get(f"{base}/me").status_code == 401
    assert (
        httpx.get(f"{base}/me", headers={"Authorization": "Bearer basic//1.99999999999.forged"}).json()["code"] == "TokenInvalid"
    )
    token = httpx.get(f"{base}/credentials/basic", auth=("e2e", stack.key)).json()["access_token"]
    assert stack.key not in token
    auth = {"Authorization": f"Bearer basic//{token}"}

    def post(graph):
        return httpx.post(f"{base}/result", json={"process": {"process_graph": graph}}, headers=auth, timeout=60)

    r = post({"n": {"process_id": "no_such_process", "arguments": {}, "result": True}})
    assert r.status_code == 400 and r.json()["code"] == "ProcessUnsupported" and "[n]" in r.json()["message"]
    r = post({"n": {"process_id": "add", "arguments": {"x": 1}, "result": True}})
    assert r.status_code == 400 and r.json()["code"] == "ProcessParameterRequired"
    r = post(
        {
            "n": {
                "process_id": "load_collection",
                "arguments": {"id": "NOPE", "spatial_extent": None, "temporal_extent": None},
                "result": True,
            }
        }
    )
    assert r.status_code == 404 and r.json()["code"] == "CollectionNotFound"
    r = post(
        {
            "n": {
                "process_id": "load_collection",
                "arguments": {"id": "SENTINEL2_L1C", "spatial_extent": None, "temporal_extent": None, "bands": ["B99"]},
                "result": True,
            }
        }
    )
    assert r.status_code == 400 and "B99" in r.json()["message"]
    # An error the run meets is answered in openEO's form too, with its code and node.
    empty = {
        "id": "SENTINEL2_L1C",
        "spatial_extent": {"west": 10, "south": 10, "east": 10.01, "north": 10.01},
        "temporal_extent": ["2020-01-01", "2020-02-01"],
    }
    r = post({"load1": {"process_id": "load_collection", "arguments": empty, "result": True}})
    assert r.status_code == 400 and r.json()["code"] == "NoDataAvailable" and "[load1]" in r.json()["message"], r.text
    # A scalar graph answers its value as JSON, through a run.
    r = post({"a": {"process_id": "add", "arguments": {"x": 1, "y": 2.5}, "result": True}})
    assert r.status_code == 200 and r.json() == 3.5
    # Over the synchronous budget: a 400 that says to use a batch job.
    big = {"west": -76, "south": 37, "east": -75, "north": 38}
    graph = {
        "l": {
            "process_id": "load_collection",
            "arguments": {"id": "SENTINEL2_L1C", "spatial_extent": big, "temporal_extent": ["2020-01-01", "2021-01-01"]},
            "result": True,
        }
    }
    r = post(graph)
    assert r.status_code == 400 and r.json()["code"] == "ProcessGraphComplexity" and "batch job" in r.json()["message"]


def test_a_batch_job_over_a_larger_extent_runs_in_chunks_with_the_same_answer(stack, con, tmp_path):
    """A per-pixel graph (NDVI, max over time, GTiff) over the demo area as a batch job: its grid is
    cut into windows, each a step of the run, the file written from them; it equals the same graph
    answered in one piece by /result, and numpy on the same pixels."""
    import datetime as dt

    records = sorted(list_scenes("sentinel2l2a", url=stack.db_url), key=lambda r: r.date)[:3]
    extent = inner_extent(records[0], 0.05, 0.95)
    temporal = [records[0].date.isoformat(), (records[-1].date + dt.timedelta(days=1)).isoformat()]
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=extent, temporal_extent=temporal, bands=["B04", "B08"])
    graph = cube.ndvi(nir="B08", red="B04").max_time()
    whole = tmp_path / "whole.tif"
    graph.download(whole)
    job = graph.save_result(format="GTiff").create_job(title="chunked")
    job.start_and_wait(max_poll_interval=1, print=lambda *a, **k: None)
    [chunked] = [p for p in job.get_results().download_files(tmp_path / "job") if p.suffix == ".tif"]
    grid, window = lattice(records[0].assets["B04"]["href"], extent)
    planes = []
    for rec in records:
        red = dn(rec, "B04", window) + rec.assets["B04"]["offset"] * 1e4
        nir = dn(rec, "B08", window) + rec.assets["B08"]["offset"] * 1e4
        planes.append((nir - red) / (nir + red))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmax(np.stack(planes), axis=0)
    with rasterio.open(whole) as a, rasterio.open(chunked) as b:
        assert a.shape == b.shape == grid.shape and b.transform.almost_equals(grid.transform) and b.crs == a.crs
        one, parts = a.read(1), b.read(1)
    assert np.array_equal(one, parts, equal_nan=True)
    assert np.allclose(parts, want, rtol=1e-6, atol=1e-7, equal_nan=True) and np.isfinite(parts).sum() > 10_000
    # The run evaluated several windows, each a step of its own.
    with get_engine(stack.db_url).connect() as conn:
        run_id = conn.execute(
            text("SELECT t.flow_run_id FROM tasks t JOIN openeo_jobs j ON j.task_id = t.id WHERE j.id = :id"), {"id": job.job_id}
        ).scalar_one()
    api = stack.service.env["PREFECT_API_URL"]
    deadline = time.monotonic() + 20
    while True:
        names = [t["name"] for t in httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()]
        chunks = [n for n in names if n.startswith("chunk-")]
        if (len(chunks) > 1 and "publish" in names) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(chunks) > 1, names


# --- the openEO API's own schemas ------------------------------------------------------------------

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "openeo" / "api" / "openapi.yaml"


@pytest.fixture(scope="module")
def openapi(stack):
    """The openEO API document (beside the clone), its servers pointed at this gateway."""
    if not SPEC_PATH.is_file():
        pytest.skip("no openEO specifications beside the clone")
    import yaml
    from openapi_core import OpenAPI

    data = yaml.safe_load(SPEC_PATH.read_text())
    # A process's parameter schema is `oneOf: [Generic (any schema), process graph, data cube]`: a
    # catch-all beside two specific branches, so no schema matches exactly one of them and every
    # official definition would fail a strict validator. Read as the document means it: anyOf.
    json_schema = data["components"]["schemas"]["process_json_schema"]
    json_schema["anyOf"] = json_schema.pop("oneOf")
    data["servers"] = [{"url": f"{stack.base}/openeo/1.2"}]
    data["paths"]["/.well-known/openeo"]["get"]["servers"] = [{"url": stack.base}]
    return OpenAPI.from_dict(data)


def checked(openapi, method: str, url: str, status: int, token: str | None = None, body: dict | None = None):
    """The response to a request, validated against the openEO API document (status, headers, body)."""
    import requests
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    headers = {"Authorization": f"Bearer basic//{token}"} if token else {}
    request = requests.Request(method, url, json=body, headers=headers)
    response = requests.Session().send(request.prepare(), allow_redirects=False, timeout=60)
    assert response.status_code == status, (url, response.status_code, response.text[:500])
    openapi.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))
    return response


def test_responses_validate_against_the_openeo_api_document(stack, openapi):
    base = f"{stack.base}/openeo/1.2"
    token = httpx.get(f"{base}/credentials/basic", auth=("e2e", stack.key)).json()["access_token"]
    checked(openapi, "GET", f"{stack.base}/.well-known/openeo", 200)
    assert httpx.get(base).json()["api_version"] == "1.2.0"  # without the slash too (the suite asks so)
    for path in ("/", "/conformance", "/file_formats", "/collections", "/collections/SENTINEL2_L2A", "/processes"):
        checked(openapi, "GET", base + path, 200)
    checked(openapi, "GET", f"{base}/me", 200, token)
    checked(openapi, "GET", f"{base}/collections/NOPE", 404)
    graph = {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}
    created = checked(openapi, "POST", f"{base}/jobs", 201, token, {"title": "compliance", "process": graph})
    job = created.headers["OpenEO-Identifier"]
    checked(openapi, "GET", f"{base}/jobs", 200, token)
    checked(openapi, "GET", f"{base}/jobs/{job}", 200, token)
    checked(openapi, "PATCH", f"{base}/jobs/{job}", 204, token, {"title": "renamed"})
    checked(openapi, "GET", f"{base}/jobs/{job}/results", 400, token)  # JobNotFinished
    checked(openapi, "POST", f"{base}/jobs/{job}/results", 202, token)
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/jobs/{job}", headers={"Authorization": f"Bearer basic//{token}"}).json()["status"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    results = checked(openapi, "GET", f"{base}/jobs/{job}/results", 200, token).json()
    [asset] = results["assets"].values()
    assert httpx.get(asset["href"]).json() == 3
    checked(openapi, "GET", f"{base}/jobs/{job}/logs", 200, token)
    checked(openapi, "DELETE", f"{base}/jobs/{job}", 204, token)
    checked(openapi, "GET", f"{base}/jobs/{job}", 404, token)
    checked(openapi, "POST", f"{base}/result", 400, token, {"process": {"process_graph": {}}})
