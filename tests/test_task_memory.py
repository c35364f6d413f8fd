"""Memory grows with what a task outputs, and the budget counts it before any read.

Ten expressions over 16 Mpx: the run's peak memory stays within the budget's estimate (plus a
margin); ten expressions over a whole Sentinel-2 tile are refused at submission naming bm_type,
while one expression over the same tile (a full-tile NDVI) is still accepted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import rasterio
from affine import Affine

SIZE = 4000  # 16 Mpx at 10 m
TEN = ", ".join(f"B04 * {i + 1}" for i in range(10))


@pytest.fixture(scope="module")
def large_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large-scene")
    rng = np.random.default_rng(3)
    data = rng.integers(200, 4000, (SIZE, SIZE), dtype=np.uint16)
    with rasterio.open(
        folder / "B04.tif",
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=1,
        dtype="uint16",
        crs="EPSG:32618",
        transform=Affine(10, 0, 400000, 0, -10, 4200000),
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
    ) as dst:
        dst.write(data, 1)
    return folder


def test_ten_expressions_over_16_mpx_stay_within_the_estimate(large_scene, tmp_path):
    script = textwrap.dedent(f"""
        import json, resource
        import numpy as np
        from eotasks.budget import MB
        from eotasks.catalog.ingest import ingest_folder
        from eotasks.db import init_db
        from eotasks.models import BandmathParams
        from eotasks.raster.cost import BYTES_OUTPUT, BYTES_VALUE
        from tasks.crop import crop_scene
        from tasks.encode import NODATA
        from flows._common import programs_for
        from eotasks.raster.indices import bands_of
        url = "sqlite:///{tmp_path / "db.sqlite"}"
        init_db(url)
        scene = ingest_folder("{large_scene}", "sentinel2", view_id="S2/18/S/VG/2020/6/15/0", url=url)
        params = BandmathParams(view_id="S2/18/S/VG/2020/6/15/0", bm_type="{TEN}")
        programs = programs_for(scene, params.bm_type)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        [bands] = crop_scene(scene, params, [bands_of(programs)], "bandmath").rasters
        indices = bands.evaluate(programs, np.float32)
        indices.to_cog(__import__("pathlib").Path("{tmp_path / "out.tif"}"), dtype=np.float32, nodata=NODATA)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        px = bands.grid.pixels
        estimate = (px * BYTES_VALUE + len(programs) * px * BYTES_OUTPUT) / MB
        print(json.dumps({{"mb": (peak - before) / 1024, "estimate_mb": estimate,
                           "px": px, "bands": indices.values.shape[0]}}))
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GDAL_CACHEMAX": "64", "EOTASKS_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["px"] == SIZE * SIZE and out["bands"] == 10
    bound = out["estimate_mb"] * 1.25 + 150  # the estimate, a quarter for numpy's and GDAL's own, and the process's growth
    print(f"peak {out['mb']:.0f} MB above baseline, estimate {out['estimate_mb']:.0f} MB, bound {bound:.0f} MB")
    assert out["mb"] < bound, out
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.count == 10 and ds.dtypes[0] == "float32"
        window = ds.read(window=((0, 4), (0, 4)))
    with rasterio.open(large_scene / "B04.tif") as src:
        dn = src.read(1, window=((0, 4), (0, 4))).astype(np.float64) / 10000
    for i in range(10):
        np.testing.assert_allclose(window[i], (dn * (i + 1)).astype(np.float32), rtol=1e-6)


def test_ten_expressions_over_a_whole_tile_are_refused_before_any_read(sqlite_url, monkeypatch):
    """A catalogued full tile (10980 x 10980 px at 10 m): nothing is read to decide."""
    from fastapi.testclient import TestClient

    from eotasks.catalog.scenes import upsert_scene
    from eotasks.db import SceneRecord, create_api_key
    from eotasks.raster.aoi import footprint_geojson
    from eotasks.settings import reset_settings
    from gateway.app import create_app
    from tests.test_gateway import FakeRuns

    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    try:
        bounds = (300000.0, 4090200.0, 409800.0, 4200000.0)
        assets = {
            b: {
                "href": f"/nonexistent/{b}.tif",
                "resolution": 10.0,
                "scale": 1e-4,
                "offset": 0.0,
                "nodata": 0,
                "spectral": True,
                "unit": "reflectance",
            }
            for b in ("B04", "B08")
        }
        upsert_scene(
            SceneRecord(
                view_id="S2/18/S/VG/2021/6/15/0",
                scene_id="S2A_tile_20210615_18SVG_0",
                sensor="sentinel2",
                date=__import__("datetime").date(2021, 6, 15),
                crs="EPSG:32618",
                footprint=footprint_geojson(bounds, "EPSG:32618"),
                assets=assets,
            )
        )
        key = create_api_key("memory")[0]
        with TestClient(create_app(FakeRuns())) as client:

            def post(bm_type: str):
                return client.post(
                    "/api",
                    params={"api_key": key},
                    json={"type": "bandmath", "params": {"view_id": "S2/18/S/VG/2021/6/15/0", "bm_type": bm_type}},
                )

            ten = post(TEN)
            assert ten.status_code == 400 and ten.json()["details"][0]["field"] == "params.bm_type", ten.text
            assert "MB in memory" in ten.json()["error"]
            assert post("NDVI").status_code == 202  # a whole tile's NDVI: 2 bands read, 1 output, within 4 GB
    finally:
        reset_settings()
