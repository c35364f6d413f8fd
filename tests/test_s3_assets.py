"""Scene assets on S3 are read in place by windows: same pixels as a local read, few bytes moved."""

from __future__ import annotations

from pathlib import Path

import boto3
import numpy as np
import pytest
from shapely.geometry import Polygon

from eotasks.assets import aws_session_options, gdal_options
from eotasks.raster.crop import Asset, crop_to_aoi
from eotasks.settings import reset_settings
from tests.conftest import CROP_DIR
from tests.stack import CountingProxy

FULL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentinel2-l1c-sample"
SMALL_AOI = Polygon([(-75.655, 37.700), (-75.648, 37.700), (-75.648, 37.705), (-75.655, 37.705)])  # ~600 x 550 m


@pytest.fixture
def s3_assets(moto_s3, monkeypatch):
    proxy = CountingProxy(moto_s3)
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "EOTASKS_ASSETS_S3_ENDPOINT_URL": proxy.url}.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="scenes")
    yield s3, proxy
    proxy.close()
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()


def test_small_aoi_reads_a_small_fraction_of_the_files(s3_assets):
    s3, proxy = s3_assets
    folder = FULL_SAMPLE if FULL_SAMPLE.is_dir() else CROP_DIR
    local, remote, sizes = {}, {}, {}
    for band in ("B04", "B08"):
        path = folder / f"{band}.tif"
        s3.upload_file(str(path), "scenes", f"s2/{band}.tif")
        local[band] = Asset(str(path), 10, 1e-4, 0, 0)
        remote[band] = Asset(f"s3://scenes/s2/{band}.tif", 10, 1e-4, 0, 0)
        sizes[f"/scenes/s2/{band}.tif"] = path.stat().st_size
    expected = crop_to_aoi(local, ["B04", "B08"], SMALL_AOI, mask_outside=True)
    got = crop_to_aoi(remote, ["B04", "B08"], SMALL_AOI, mask_outside=True)
    assert got.grid == expected.grid
    for band in ("B04", "B08"):
        assert np.array_equal(got.data[band], expected.data[band])
    read = sum(proxy.bytes_by_path.get(p, 0) for p in sizes)
    assert read > 0, proxy.bytes_by_path  # the reads really went through S3
    if folder == FULL_SAMPLE:
        # 60 x 55 px of two 1933 x 1947 px COGs: a tile or two of each, not the files.
        assert read < 0.15 * sum(sizes.values()), (read, sum(sizes.values()))
    print(f"read {read} of {sum(sizes.values())} bytes ({100 * read / sum(sizes.values()):.1f} %)")


def test_requester_pays_and_endpoint_reach_gdal(monkeypatch):
    monkeypatch.setenv("EOTASKS_ASSETS_S3_ENDPOINT_URL", "https://minio.example:9000")
    monkeypatch.setenv("EOTASKS_ASSETS_REQUESTER_PAYS", "true")
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()
    try:
        options = gdal_options()
        assert options["AWS_S3_ENDPOINT"] == "minio.example:9000" and options["AWS_HTTPS"] == "YES"
        assert options["AWS_REQUEST_PAYER"] == "requester" and options["AWS_VIRTUAL_HOSTING"] == "FALSE"
        assert aws_session_options()["requester_pays"] is True
    finally:
        reset_settings()
        gdal_options.cache_clear()
        aws_session_options.cache_clear()
    aws_session_options.cache_clear()
