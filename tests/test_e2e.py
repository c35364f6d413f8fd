"""End to end on the embedded default: a real Prefect server, `deployments/serve.py` and the gateway
as processes (the same ones `eotasks up` starts), results in the local store.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import shapely
from matplotlib import colormaps
from PIL import Image
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.ingest import ingest_folder
from eotasks.db import TaskRecord, create_api_key, session
from tests.conftest import CROP_DIR, SAMPLE_VIEW_ID
from tests.reference import independent_ndvi, independent_scene_stats, numpy_stats, polygon_in_crs, read_bbox, read_polygon
from tests.stack import CallbackListener, Stack

pytestmark = pytest.mark.e2e

TRIANGLE = [(-75.6595, 37.6985), (-75.6420, 37.6960), (-75.6500, 37.7160), (-75.6595, 37.6985)]
GEOMETRY = {"type": "Polygon", "coordinates": [[list(p) for p in TRIANGLE]]}
SCENE_ID = "S2A_tile_20200615_18SVG_0"


@pytest.fixture(scope="module")
def stack(prefect_server, tmp_path_factory):
    # The operator allows loopback callbacks here (they are refused by default: see test_gateway).
    # One retry keeps the broken-asset case quick; the retry itself is still exercised.
    # Callback attempts are short here so a dead callback server is given up within the test.
    s = Stack(
        tmp_path_factory.mktemp("local-stack"),
        prefect_server,
        {
            "EOTASKS_CALLBACK_ALLOW_PRIVATE": "true",
            "EOTASKS_IO_RETRIES": "1",
            "EOTASKS_CALLBACK_DEADLINE_S": "2",
            "EOTASKS_CALLBACK_BACKOFF_S": "0.5",
            "EOTASKS_CALLBACK_RETRIES": "2",
        },
    )
    yield s
    s.stop()


def check_ndvi_tif(data: bytes) -> None:
    expected, inside, transform = independent_ndvi(TRIANGLE)
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.driver == "GTiff" and ds.count == 1 and ds.dtypes == ("float32",)
        assert ds.nodata == -9999.0 and ds.crs.to_epsg() == 32618
        assert ds.transform == transform and ds.shape == expected.shape
        assert ds.profile["blockxsize"] == 512 and ds.profile["compress"] == "deflate"
        out = ds.read(1)
    np.testing.assert_allclose(out[inside], expected[inside].astype(np.float32), atol=1e-6)
    assert (out[~inside] == -9999.0).all() and inside.sum() > 1000


def test_bandmath_ndvi_over_a_polygon_with_callback(stack):
    listener = CallbackListener()
    try:
        task_id = stack.submit(
            "bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}, callback_url=listener.url
        )
        name, data = stack.result(task_id)
        assert name == f"{SCENE_ID}_NDVI.TIF"
        check_ndvi_tif(data)
        assert list((stack.root / "results" / task_id).glob("*_NDVI.TIF"))
        deadline = time.monotonic() + 30
        while not listener.received and time.monotonic() < deadline:
            time.sleep(0.2)
        [answer] = listener.received
        assert answer["task_id"] == task_id and answer["task_type"] == "finished"
        check_ndvi_tif(httpx.get(answer["result_url"]).content)  # the callback's URL works too
    finally:
        listener.close()
    other_key, _ = create_api_key("intruder", url=stack.db_url)
    assert stack.client.get(f"{stack.base}/api/{task_id}", params={"api_key": other_key}).status_code == 404


@pytest.mark.parametrize("mode", ["drip", "silent"])
def test_a_dead_callback_server_delays_nothing(stack, mode):
    """A callback server that drips bytes or never answers: the task ends before the outbox's first
    attempt even begins (nothing of the callback is in the run's way), as fast as a twin task
    without a callback, and the outbox gives up on it within its deadlines."""
    import datetime as dt

    from eotasks.db import CallbackRecord, session
    from tests.test_callbacks import Listener

    def timed(**top) -> tuple[str, float]:
        started = time.monotonic()
        task_id = stack.submit("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}, **top)
        assert stack.wait(task_id, timeout=60).status_code == 303
        return task_id, time.monotonic() - started

    server = Listener(mode)
    try:
        _, twin = timed()
        task_id, took = timed(callback_url=server.url)
        row = None
        deadline = time.monotonic() + 30  # two 2 s attempts 0.5 s apart, and the sender's 1 s tick
        while time.monotonic() < deadline:
            with session(stack.db_url) as s:
                row = s.query(CallbackRecord).filter(CallbackRecord.task_id == task_id).one_or_none()
            if row is not None and row.done_at is not None:
                break
            time.sleep(0.3)
        assert row is not None and row.outcome == "gave up" and row.attempts == 2, row
        assert row.last_result == "no answer within 2 s" and server.connections == 2
        with session(stack.db_url) as s:
            ended = s.get(TaskRecord, task_id).ended_at.replace(tzinfo=dt.UTC).timestamp()
        assert ended < server.accepted[0], (ended, server.accepted)  # the run had ended before any attempt
        assert took < twin + 2.0, (took, twin)  # inside the run, two 2 s attempts would have added ~4.5 s
    finally:
        server.close()


def test_missing_scene_fails_at_scene_lookup(stack):
    task_id = stack.submit("bandmath", {"view_id": "S2/18/S/VG/2021/1/1/0", "bm_type": "NDVI"})
    assert stack.wait(task_id).json() == {
        "task_type": "failed",
        "status": "failed",
        "stage": "scene_lookup",
        "error": "Scene with given ID does not exist",
        "task_id": task_id,
    }


def test_an_aoi_outside_the_scene_is_refused_with_its_extent(stack):
    """The catalogue knows the footprint: a 400 at submission that names the AOI and gives the
    scene's extent, and says so when longitude and latitude were swapped (no run is created)."""

    def post(params: dict) -> httpx.Response:
        body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", **params}}
        return stack.client.post(f"{stack.base}/api", params={"api_key": stack.key}, json=body)

    r = post({"bbox": [10.0, 10.0, 10.1, 10.1]})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.bbox", r.text
    assert "-75.6612, 37.6797, -75.6269, 37.7069" in r.json()["error"] and "swapped" not in r.json()["error"]
    swapped = {"type": "Polygon", "coordinates": [[[y, x] for x, y in GEOMETRY["coordinates"][0]]]}
    r = post({"geometry": swapped})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.geometry", r.text
    assert "longitude and latitude swapped" in r.json()["error"]


def test_cancel_a_task(stack):
    """SPEC §7: 202, and from then on every answer is cancelled (it once read failed, "worker process
    crashed", for seconds while the run was being stopped); the callback says so once."""
    listener = CallbackListener()
    try:
        task_id = stack.submit(
            "bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}, callback_url=listener.url
        )
        r = stack.client.delete(f"{stack.base}/api/{task_id}", params={"api_key": stack.key})
        assert r.status_code == 202 and r.json()["task_type"] == "cancelled", r.text
        answers = set()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            got = stack.client.get(f"{stack.base}/api/{task_id}", params={"api_key": stack.key})
            if got.status_code != 429:
                answers.add((got.status_code, got.json()["task_type"], got.json()["error"]))
            time.sleep(0.25)
        assert answers == {(200, "cancelled", "The task was cancelled")}, answers
        deadline = time.monotonic() + 30
        while not listener.received and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        assert [a["task_type"] for a in listener.received] == ["cancelled"], listener.received
    finally:
        listener.close()


def test_lbe_on_the_real_sample(stack):
    one = stack.submit("lbe", {"view_id": SAMPLE_VIEW_ID, "bands": ["B04"], "geometry": GEOMETRY})
    rgb = stack.submit("lbe", {"view_id": SAMPLE_VIEW_ID, "bands": ["B4", "B03", "blue"], "geometry": GEOMETRY, "merge": True})
    mixed = stack.submit("lbe", {"view_id": SAMPLE_VIEW_ID, "bands": ["B04", "B11"], "geometry": GEOMETRY, "merge": True})

    name, data = stack.result(one)
    assert name == f"{SCENE_ID}_B04.jp2"
    expected, _, transform = read_polygon(CROP_DIR / "B04.tif", TRIANGLE)
    with MemoryFile(data, ext=".jp2") as mem, mem.open() as ds:
        assert ds.driver == "JP2OpenJPEG" and ds.crs.to_epsg() == 32618 and ds.transform == transform
        assert np.array_equal(ds.read(1), expected)

    name, data = stack.result(rgb)
    assert name == f"{SCENE_ID}_B04-B03-B02.tif"
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.count == 3 and ds.dtypes == ("uint16",) * 3 and ds.crs.to_epsg() == 32618 and ds.nodata == 0
        for i, band in enumerate(["B04", "B03", "B02"], start=1):
            expected, _, transform = read_polygon(CROP_DIR / f"{band}.tif", TRIANGLE)
            assert ds.transform == transform and np.array_equal(ds.read(i), expected), band

    name, data = stack.result(mixed)
    assert name == f"{SCENE_ID}_B04-B11.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == [f"{SCENE_ID}_B04.tif", f"{SCENE_ID}_B11.tif"]
        for band in ("B04", "B11"):
            expected, _, transform = read_polygon(CROP_DIR / f"{band}.tif", TRIANGLE)
            with MemoryFile(zf.read(f"{SCENE_ID}_{band}.tif")) as mem, mem.open() as ds:
                assert ds.transform == transform and ds.res == ((10.0, 10.0) if band == "B04" else (20.0, 20.0))
                assert np.array_equal(ds.read(1), expected), band


def test_lbe_seed_example_on_a_landsat_scene(stack, tmp_path):
    """The seed's request as written, on a demo Landsat scene ingested under its id (15 m panchromatic B8)."""
    [record] = generate_demo(tmp_path / "demo", s2_scenes=0, landsat_scenes=1, url=stack.db_url)
    folder = tmp_path / "demo" / "landsat8" / record.scene_id
    ingest_folder(folder, "L8", view_id="L8/LC80290332017076LGN00", url=stack.db_url)
    bbox = [-75.45, 37.79, -75.42, 37.81]
    task_id = stack.submit("lbe", {"view_id": "L8/LC80290332017076LGN00", "bands": ["B8"], "bbox": bbox, "merge": False})
    name, data = stack.result(task_id)
    assert name == "LC80290332017076LGN00_B8.tif"
    expected, transform = read_bbox(folder / f"{record.scene_id}_B8.TIF", bbox)
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.res == (15.0, 15.0) and ds.transform == transform and ds.crs.to_epsg() == 32618
        assert np.array_equal(ds.read(1), expected)


def test_jpeg_true_colour_and_ndvi_colormap(stack):
    rgb_tif = stack.submit(
        "jpeg", {"view_id": SAMPLE_VIEW_ID, "bm_type": "B04,B03,B02", "geometry": GEOMETRY, "format": "tiff", "px_size": 20}
    )
    rgb_jpg = stack.submit("jpeg", {"view_id": SAMPLE_VIEW_ID, "bm_type": "B04,B03,B02", "geometry": GEOMETRY})
    ndvi_params = {
        "view_id": SAMPLE_VIEW_ID,
        "bm_type": "NDVI",
        "geometry": GEOMETRY,
        "colormap": "RdYlGn",
        "levels": "0,1",
        "resample": "nearest",
        "px_size": 10,
    }
    ndvi_png = stack.submit("jpeg", {**ndvi_params, "format": "png"})
    ndvi_tif = stack.submit("jpeg", {**ndvi_params, "format": "tiff"})

    name, data = stack.result(rgb_tif)
    assert name == f"{SCENE_ID}_B04_B03_B02.tif"
    with rasterio.open(CROP_DIR / "B04.tif") as src:
        data_bounds = transform_bounds(src.crs, 3857, *src.bounds, densify_pts=21)
    aoi = polygon_in_crs(TRIANGLE, 3857)
    want_w = min(aoi.bounds[2], data_bounds[2]) - max(aoi.bounds[0], data_bounds[0])
    with MemoryFile(data) as mem, mem.open() as ds:
        assert ds.crs.to_epsg() == 3857 and ds.count == 4 and ds.dtypes == ("uint8",) * 4
        assert ds.res == (20.0, 20.0) and abs(ds.width * 20 - want_w) <= 20
        alpha = ds.read(4)
        t = ds.transform
        cx, cy = np.meshgrid(t.c + (np.arange(ds.width) + 0.5) * t.a, t.f + (np.arange(ds.height) + 0.5) * t.e)
        outside = ~shapely.contains_xy(aoi, cx, cy)
        assert (alpha[outside] == 0).all() and (alpha[~outside] == 255).mean() > 0.95
        rgb = ds.read([1, 2, 3])[:, alpha == 255]
        assert rgb.min() == 0 and rgb.max() == 255  # a 2-98 % stretch spans the range

    name, data = stack.result(rgb_jpg)
    assert name.endswith(".jpg")
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.mode == "RGB"

    name, data = stack.result(ndvi_png)
    assert name == f"{SCENE_ID}_NDVI.png"
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.mode == "RGBA"
    png = np.asarray(img)
    name, data = stack.result(ndvi_tif)
    with MemoryFile(data) as mem, mem.open() as ds:
        tif = np.moveaxis(ds.read(), 0, -1)
        transform = ds.transform
    assert np.array_equal(png, tif)  # the same picture, whatever the encoding
    # Pixels well inside the AOI: find the source pixel nearest picks, and colour its NDVI independently.
    with rasterio.open(CROP_DIR / "B04.tif") as red, rasterio.open(CROP_DIR / "B08.tif") as nir:
        to_utm = Transformer.from_crs(3857, red.crs, always_xy=True)
        checked = 0
        for row in range(5, png.shape[0], 7):
            for col in range(5, png.shape[1], 7):
                x, y = transform @ (col + 0.5, row + 0.5)
                if not aoi.buffer(-30).contains(shapely.Point(x, y)):
                    continue
                fc, fr = ~red.transform @ to_utm.transform(x, y)
                if min(fc % 1, 1 - fc % 1, fr % 1, 1 - fr % 1) < 0.05:
                    continue  # too close to a source pixel edge to know which one nearest picks
                window = ((int(fr), int(fr) + 1), (int(fc), int(fc) + 1))
                r = red.read(1, window=window)[0, 0] / 10000
                n = nir.read(1, window=window)[0, 0] / 10000
                value = (n - r) / (n + r)
                expected = np.array(colormaps["RdYlGn"](float(np.clip(value, 0, 1)), bytes=True)[:3])
                assert tuple(png[row, col]) == (*expected, 255), (row, col, value)
                checked += 1
    assert checked > 50


def test_mt_stats_over_a_demo_field_for_a_year(stack, tmp_path):
    records = {r.view_id: r for r in generate_demo(tmp_path / "demo", url=stack.db_url)}
    # One scene's NIR file is corrupt, another's is gone: both must land in errors, the task finishes.
    by_date = sorted(records.values(), key=lambda r: r.date)
    corrupt, missing = by_date[5], by_date[9]
    corrupt_band = "B08" if corrupt.sensor == "sentinel2l2a" else "B5"
    Path(corrupt.assets[corrupt_band]["href"]).write_bytes(b"II*\x00 this is not a GeoTIFF")
    missing_band = "B08" if missing.sensor == "sentinel2l2a" else "B5"
    import os

    os.remove(missing.assets[missing_band]["href"])

    field = demo_fields()[0]["geometry"]
    lonlat = field["coordinates"][0]
    common = {"date_start": "2023-01-01", "date_end": "2023-12-31", "geometry": field, "sensors": ["sentinel2l2a", "landsat8"]}
    listed = stack.submit("mt_stats", {**common, "bm_type": ["NDVI", "EVI"]})
    flat = stack.submit("mt_stats", {**common, "bm_type": "NDVI", "max_cloud_cover_in_aoi": 1})

    answer = stack.wait(listed, timeout=300)
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    assert len(answer["result"]) + len(answer["errors"]) == len(records) == 47
    broken = {e["view_id"]: e["error"] for e in answer["errors"]}
    assert set(broken) == {corrupt.view_id, missing.view_id}
    assert all("could not be read" in msg for msg in broken.values())
    assert [r["date"] for r in answer["result"]] == sorted(r["date"] for r in answer["result"])
    for item in answer["result"]:
        record = records[item["view_id"]]
        for expression in ("NDVI", "EVI"):
            cloud, values = independent_scene_stats(record, expression, lonlat)
            assert item["cloud"] == pytest.approx(cloud, rel=1e-12, abs=1e-12)
            for key, want in numpy_stats(values).items():
                assert item["indexes"][expression][key] == pytest.approx(want, rel=1e-9), (item["view_id"], expression, key)
    clouds = {item["view_id"]: item["cloud"] for item in answer["result"]}
    assert any(c > 1 for c in clouds.values()) and any(c <= 1 for c in clouds.values())

    answer = stack.wait(flat, timeout=300).json()
    keys = {
        "q1",
        "q3",
        "min",
        "p90",
        "max",
        "average",
        "median",
        "p10",
        "date",
        "scene_id",
        "variance",
        "cloud",
        "std",
        "view_id",
    }
    assert all(set(item) == keys for item in answer["result"])
    assert {item["view_id"] for item in answer["result"]} == {v for v, c in clouds.items() if c <= 1}
    over = {e["view_id"] for e in answer["errors"] if "above max_cloud_cover_in_aoi" in e["error"]}
    assert over == {v for v, c in clouds.items() if c > 1}
    assert all(set(e) == {"status", "date", "scene_id", "view_id", "error"} for e in answer["errors"])

    # The operator's view: the flow run published a table, a chart and a finished progress bar.
    from sqlmodel import Session

    from eotasks.db import TaskRecord, get_engine

    with Session(get_engine(stack.db_url)) as s:
        flow_run_id = s.get(TaskRecord, listed).flow_run_id
    api = stack.service.env["PREFECT_API_URL"]
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}).json()
    kinds = {a["type"]: a for a in artifacts}
    assert {"table", "image", "progress"} <= set(kinds), kinds.keys()
    assert kinds["progress"]["data"] == 100.0
    chart = httpx.get(kinds["image"]["data"])
    assert chart.headers["content-type"].startswith("image/svg+xml") and b"<polyline" in chart.content


def test_no_secret_in_any_log(stack):
    """Runs with a key in the query string, a download by signed URL and a callback URL with a token:
    then every log of the stack (gateway access log, worker and flow-run processes) and every Prefect
    log of those runs is searched for the key, the signing secret, the signature and the token."""
    from urllib.parse import parse_qs, urlsplit

    listener = CallbackListener()
    try:
        hook = f"{listener.url}/webhook-path-secret-77?token=cb-secret-123456"
        task_id = stack.submit(
            "bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}, callback_url=hook
        )
        r = stack.wait(task_id)
        assert r.status_code == 303
        signature = parse_qs(urlsplit(r.headers["Location"]).query)["signature"][0]
        assert stack.client.get(r.headers["Location"]).status_code == 200
        failed = stack.submit("bandmath", {"view_id": "S2/18/S/VG/2020/6/16/0", "bm_type": "NDVI", "geometry": GEOMETRY})
        stack.wait(failed)
        deadline = time.monotonic() + 20
        while not listener.received and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.close()
    secrets = {
        "api key": stack.key,
        "signing secret": (stack.root / "signing.secret").read_text().strip(),
        "signature": signature,
        "callback token": "cb-secret-123456",
        "callback path": "webhook-path-secret-77",
    }
    api = stack.service.env["PREFECT_API_URL"]
    with session(stack.db_url) as s:
        run_ids = [s.get(TaskRecord, t).flow_run_id for t in (task_id, failed)]
    # Flow-run logs reach Prefect in batches: wait until both runs' last lines are there.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        entries = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": run_ids}}, "limit": 200}).json()
        if sum("Finished in state" in e["message"] and e.get("task_run_id") is None for e in entries) >= 2:
            break
        time.sleep(0.2)
    texts = {p.name: p.read_text(errors="replace") for p in (stack.root / "logs").glob("*.log")}
    texts["prefect flow-run logs"] = "\n".join(e["message"] for e in entries)
    assert "uvicorn.access" in texts["gateway.log"] or "GET /api/" in texts["gateway.log"]  # the access log is there
    assert len(entries) > 5
    for what, secret in secrets.items():
        for name, text in texts.items():
            assert secret not in text, f"{what} found in {name}"


def test_client_json_is_stored_in_prefect_as_plain_geojson(stack):
    """The run's parameters as Prefect stored them: the geometry is the one we rebuilt, nothing of a
    client's template or variable reference reached Prefect, and nothing was rendered."""
    template = {"__prefect_kind": "jinja", "template": "{{ 'ren' ~ 'dered-by-jinja' }}"}
    geometry = {**GEOMETRY, "extra": template, "crs": {"__prefect_kind": "workspace_variable", "variable_name": "x"}}
    started = time.monotonic()
    task_id = stack.submit("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": geometry})
    assert time.monotonic() - started < 2.0
    with session(stack.db_url) as s:
        run_id = s.get(TaskRecord, task_id).flow_run_id
    stored = httpx.get(f"{stack.service.env['PREFECT_API_URL']}/flow_runs/{run_id}").json()["parameters"]
    assert stored["params"]["geometry"] == {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in TRIANGLE]]}
    assert "rendered-by-jinja" not in str(stored) and "__prefect" not in str(stored)
    assert stack.wait(task_id).status_code == 303


def test_a_run_removed_from_prefect_is_answered_not_a_500(stack):
    task_id = stack.submit("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY})
    with session(stack.db_url) as s:
        run_id = s.get(TaskRecord, task_id).flow_run_id
    api = stack.service.env["PREFECT_API_URL"]

    def prefect(method: str, path: str, **kw) -> httpx.Response:
        """As Prefect's own client does: a 503 (a write conflict on its SQLite) is tried again."""
        for _ in range(20):
            r = httpx.request(method, f"{api}{path}", **kw)
            if r.status_code != 503:
                return r
            time.sleep(0.2)
        return r

    prefect("POST", f"/flow_runs/{run_id}/set_state", json={"state": {"type": "CANCELLED"}, "force": True})
    assert prefect("DELETE", f"/flow_runs/{run_id}").status_code == 204
    # Its record says nothing yet (the run was removed before it ended): Prefect has nothing either.
    with session(stack.db_url) as s:
        record = s.get(TaskRecord, task_id)
        record.status, record.stage = None, None
        s.add(record)
        s.commit()
    got = stack.client.get(f"{stack.base}/api/{task_id}", params={"api_key": stack.key})
    assert got.status_code == 200 and got.json()["task_type"] == "failed" and "no longer exists" in got.json()["error"]
    assert stack.client.delete(f"{stack.base}/api/{task_id}", params={"api_key": stack.key}).status_code == 409


def test_the_listing_reads_states_past_prefects_page(prefect_server):
    """250 runs: Prefect answers at most 200 per request; none past them reads as created."""
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Completed

    from gateway.runs import PrefectRuns

    @flow(name="listing-probe")
    def probe() -> None:
        pass

    async def go() -> tuple[int, set[str]]:
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{prefect_server}/api"}):
            async with get_client() as client:
                ids = [str((await client.create_flow_run(probe, state=Completed())).id) for _ in range(250)]
            runs = PrefectRuns()
            await runs.start()
            try:
                states = await runs.states(ids)
            finally:
                await runs.stop()
            return len(states), set(states.values())

    count, kinds = asyncio.run(go())
    assert count == 250 and kinds == {"COMPLETED"}
