"""STAC ingestion: a static catalogue (written here with pystac) and a STAC API search (pystac-client
against a minimal local STAC API), Earth Search v1 asset keys, scene assets on S3 read in place."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pystac
import pytest
from shapely.geometry import shape

from eotasks.assets import aws_session_options, gdal_options
from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.stac import ingest_stac_search, ingest_static_catalog
from eotasks.db import init_db
from eotasks.settings import reset_settings
from eotasks.timeseries import StatsOptions
from tests.reference import aoi_statistics
from tests.stack import upload_scene

S2_KEYS = {"B02": "blue", "B04": "red", "B08": "nir", "SCL": "scl"}
L8_KEYS = {"B2": "blue", "B4": "red", "B5": "nir08", "QA_PIXEL": "qa_pixel"}


@pytest.fixture
def scenes_on_s3(moto_s3, tmp_path, monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EOTASKS_ASSETS_S3_ENDPOINT_URL": moto_s3,
    }.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()
    url = f"sqlite:///{tmp_path / 'local.db'}"
    init_db(url)
    local = generate_demo(tmp_path / "demo", s2_scenes=1, landsat_scenes=1, url=url)
    s3 = boto3.client(
        "s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3.create_bucket(Bucket="stac-scenes")
    remote = [upload_scene(s3, "stac-scenes", r.scene_id, r.assets) for r in local]
    yield local, remote
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()


def stac_items(local, remote) -> list[pystac.Item]:
    items = []
    for record, assets in zip(local, remote, strict=False):
        s2 = record.sensor == "sentinel2l2a"
        item_id = (
            f"S2B_18SVG_{record.date:%Y%m%d}_0_L2A"
            if s2
            else record.scene_id.replace(f"_{(record.date + dt.timedelta(days=9)):%Y%m%d}", "")
        )  # Earth Search drops the processing date
        item = pystac.Item(
            item_id,
            record.footprint,
            None,
            dt.datetime.combine(record.date, dt.time(15, 50), dt.UTC),
            {"platform": "sentinel-2b" if s2 else "landsat-8", "eo:cloud_cover": record.cloud_cover, "proj:code": "EPSG:32618"},
            collection="sentinel-2-l2a" if s2 else "landsat-c2-l2",
        )
        for band, key in (S2_KEYS if s2 else L8_KEYS).items():
            spec = assets[band]
            item.add_asset(
                key,
                pystac.Asset(
                    spec["href"],
                    media_type=pystac.MediaType.COG,
                    extra_fields={
                        "raster:bands": [
                            {
                                "scale": spec["scale"],
                                "offset": spec["offset"],
                                "nodata": spec["nodata"],
                                "spatial_resolution": spec["resolution"],
                            }
                        ]
                    },
                ),
            )
        items.append(item)
    return items


def check_ingested(records, local) -> None:
    by_sensor = {r.sensor: r for r in records}
    s2, l8 = by_sensor["sentinel2l2a"], by_sensor["landsat8"]
    local_s2 = next(r for r in local if r.sensor == "sentinel2l2a")
    assert s2.view_id == local_s2.view_id and s2.scene_id.startswith("S2B_tile_") and s2.mask_band == "SCL"
    assert set(s2.assets) == set(S2_KEYS) and s2.assets["B04"]["href"].startswith("s3://stac-scenes/")
    assert (s2.assets["B04"]["scale"], s2.assets["B04"]["offset"]) == (1e-4, -0.1) and s2.assets["SCL"]["spectral"] is False
    assert l8.view_id.startswith("L8/LC08_L2SP_014034_") and l8.mask_band == "QA_PIXEL" and set(l8.assets) == set(L8_KEYS)
    assert (l8.assets["B5"]["scale"], l8.assets["B5"]["offset"]) == (2.75e-5, -0.2) and l8.crs == "EPSG:32618"
    # Read in place from S3: the same statistics as from the local files.
    field = shape(demo_fields()[0]["geometry"])
    for record in records:
        twin = next(r for r in local if r.sensor == record.sensor)
        assert aoi_statistics(record, ["NDVI"], field, StatsOptions()) | {
            "view_id": twin.view_id,
            "scene_id": twin.scene_id,
        } == aoi_statistics(twin, ["NDVI"], field, StatsOptions())


def test_static_catalog_with_s3_hrefs(scenes_on_s3, tmp_path):
    local, remote = scenes_on_s3
    catalog = pystac.Catalog("demo", "demo scenes")
    catalog.add_items(stac_items(local, remote))
    catalog.normalize_hrefs(str(tmp_path / "stac"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    url = f"sqlite:///{tmp_path / 'stac.db'}"
    init_db(url)
    records, problems = ingest_static_catalog(str(tmp_path / "stac" / "catalog.json"), url)
    assert problems == [] and len(records) == 2
    check_ingested(records, local)


def test_stac_api_search_with_pystac_client(scenes_on_s3, tmp_path):
    local, remote = scenes_on_s3
    features = [i.to_dict() for i in stac_items(local, remote)]
    seen = []

    class Api(BaseHTTPRequestHandler):
        def _json(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_port}"
            self._json(
                {
                    "type": "Catalog",
                    "id": "api",
                    "description": "test",
                    "stac_version": "1.0.0",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
                    "links": [
                        {"rel": "self", "href": base + "/"},
                        {"rel": "root", "href": base + "/"},
                        {"rel": "search", "href": base + "/search", "method": "POST", "type": "application/geo+json"},
                    ],
                }
            )

        def do_POST(self):
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(query)
            hits = [f for f in features if f["collection"] in query.get("collections", [])]
            self._json({"type": "FeatureCollection", "features": hits, "links": []})

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"sqlite:///{tmp_path / 'api.db'}"
        init_db(url)
        records, problems = ingest_stac_search(
            f"http://127.0.0.1:{server.server_port}/",
            ["sentinel-2-l2a", "landsat-c2-l2"],
            bbox=[-75.46, 37.78, -75.40, 37.83],
            datetime="2023-01-01/2023-12-31",
            url=url,
        )
    finally:
        server.shutdown()
    assert problems == [] and len(records) == 2
    assert (
        seen
        and seen[0]["collections"] == ["sentinel-2-l2a", "landsat-c2-l2"]
        and seen[0]["bbox"] == [-75.46, 37.78, -75.40, 37.83]
    )
    check_ingested(records, local)


def test_a_self_contained_catalogue_with_relative_hrefs(tmp_path, sqlite_url):
    """pystac's SELF_CONTAINED catalogue writes ``"href": "./B04.tif"``; tasks on it read the files."""
    import numpy as np
    import rasterio

    from eotasks.catalog.scenes import scene_assets
    from eotasks.raster.read import read_aoi

    [local] = generate_demo(tmp_path / "demo", s2_scenes=1, landsat_scenes=0, url=sqlite_url)
    catalog = pystac.Catalog("shipped", "a catalogue shipped as a folder")
    item = pystac.Item(
        f"S2B_18SVG_{local.date:%Y%m%d}_0_L2A",
        local.footprint,
        None,
        dt.datetime.combine(local.date, dt.time(15, 50), dt.UTC),
        {"platform": "sentinel-2b", "proj:code": "EPSG:32618"},
        collection="sentinel-2-l2a",
    )
    catalog.add_item(item)
    out = tmp_path / "catalogue"
    catalog.normalize_hrefs(str(out))
    item_dir = out / item.id
    item_dir.mkdir(parents=True)
    for band, key in S2_KEYS.items():
        (item_dir / f"{band}.tif").write_bytes(Path(local.assets[band]["href"]).read_bytes())
        spec = local.assets[band]
        item.add_asset(
            key,
            pystac.Asset(
                f"./{band}.tif",
                media_type=pystac.MediaType.COG,
                extra_fields={
                    "raster:bands": [
                        {
                            "scale": spec["scale"],
                            "offset": spec["offset"],
                            "nodata": spec["nodata"],
                            "spatial_resolution": spec["resolution"],
                        }
                    ]
                },
            ),
        )
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    saved = json.loads((item_dir / f"{item.id}.json").read_text())
    assert saved["assets"]["red"]["href"] == "./B04.tif"  # what a shipped catalogue really holds

    [record], problems = ingest_static_catalog(str(out / "catalog.json"), sqlite_url)
    assert not problems and record.assets["B04"]["href"] == str(item_dir / "B04.tif")
    stored = read_aoi(scene_assets(record), ["B04", "B08"], None, mask_outside=False, scaled=False)
    for band in ("B04", "B08"):
        with rasterio.open(item_dir / f"{band}.tif") as src:
            dn = src.read(1)
        np.testing.assert_array_equal(stored.band(band), np.where(dn == 0, np.nan, dn))  # 0 is the bands' nodata
