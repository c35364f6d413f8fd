"""Scene assets on S3 are read in place by windows: same pixels as a local read, few bytes moved."""

from __future__ import annotations

from pathlib import Path

import boto3
import numpy as np
import pytest
from shapely.geometry import Polygon

from eotasks.assets import aws_session_options, gdal_options
from eotasks.raster.read import Asset, read_aoi
from eotasks.settings import reset_settings
from tests.stack import CountingProxy

SMALL_AOI = Polygon([(-75.655, 37.700), (-75.648, 37.700), (-75.648, 37.705), (-75.655, 37.705)])  # ~600 x 550 m


@pytest.fixture
def s3_assets(moto_s3, monkeypatch):
    proxy = CountingProxy(moto_s3)
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EOTASKS_ASSETS_S3_ENDPOINT_URL": proxy.url,
    }.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()
    s3 = boto3.client(
        "s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3.create_bucket(Bucket="scenes")
    yield s3, proxy
    proxy.close()
    reset_settings()
    gdal_options.cache_clear()
    aws_session_options.cache_clear()


def large_tiled_cogs(folder: Path, size: int = 4096) -> dict[str, Path]:
    """Two 10 m bands of ``size`` x ``size`` px around the small AOI, as a producer writes them: COGs
    with 512 px tiles, DEFLATE, overviews; smooth values with noise, so they compress like real ones."""
    import rasterio
    from affine import Affine
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32618, always_xy=True).transform(*SMALL_AOI.centroid.coords[0])
    transform = Affine(10, 0, round(x) - size * 5, 0, -10, round(y) + size * 5)
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:size, 0:size]
    out = {}
    for band, base in (("B04", 900), ("B08", 2600)):
        data = (base + 300 * np.sin(xx / 97) * np.cos(yy / 61) + rng.normal(0, 40, (size, size))).clip(1, 10000).astype(np.uint16)
        path = folder / f"{band}.tif"
        with rasterio.open(
            path,
            "w",
            driver="COG",
            width=size,
            height=size,
            count=1,
            dtype="uint16",
            crs="EPSG:32618",
            transform=transform,
            nodata=0,
            blocksize=512,
            compress="DEFLATE",
        ) as dst:
            dst.write(data, 1)
        out[band] = path
    return out


def test_small_aoi_reads_a_small_fraction_of_the_files(s3_assets, tmp_path):
    s3, proxy = s3_assets
    local, remote, sizes = {}, {}, {}
    for band, path in large_tiled_cogs(tmp_path).items():
        s3.upload_file(str(path), "scenes", f"s2/{band}.tif")
        local[band] = Asset(str(path), 10, 1e-4, 0, 0)
        remote[band] = Asset(f"s3://scenes/s2/{band}.tif", 10, 1e-4, 0, 0)
        sizes[f"/scenes/s2/{band}.tif"] = path.stat().st_size
    expected = read_aoi(local, ["B04", "B08"], SMALL_AOI, mask_outside=True)
    got = read_aoi(remote, ["B04", "B08"], SMALL_AOI, mask_outside=True)
    assert got.grid == expected.grid and 40 < got.grid.width < 80
    np.testing.assert_array_equal(got.values, expected.values)
    read = sum(proxy.bytes_by_path.get(p, 0) for p in sizes)
    # 60 x 55 px of two 4096 x 4096 px COGs: a tile or two of each and the headers, not the files.
    assert 0 < read < 0.15 * sum(sizes.values()), (read, sum(sizes.values()), proxy.bytes_by_path)
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
