"""Four small fields at the four corners of a full-size Sentinel-2 tile (10980 x 10980 px at 10 m):
the scene is read only in the blocks the fields touch. Peak memory of the computation stays under
100 MB above the process's baseline, where reading the tile's two 10 m bands would take ~480 MB as
stored and ~1.9 GB as float64."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

SIZE = 10980
BOUND_MB = 100


def write_tile(path: Path, size: int, res: float, value: int, dtype: str) -> None:
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": dtype,
        "crs": "EPSG:32632",
        "transform": Affine(res, 0, 300000, 0, -res, 5000040),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "nodata": 0,
    }
    block = np.full((512, 512), value, dtype)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, size, 512):
            for c in range(0, size, 512):
                w = Window(c, r, min(512, size - c), min(512, size - r))
                dst.write(block[: int(w.height), : int(w.width)], 1, window=w)


def test_four_corner_fields_do_not_read_the_tile(tmp_path):
    folder = tmp_path / "tile"
    folder.mkdir()
    write_tile(folder / "B04.tif", SIZE, 10, 800, "uint16")
    write_tile(folder / "B08.tif", SIZE, 10, 3000, "uint16")
    write_tile(folder / "SCL.tif", SIZE // 2, 20, 4, "uint8")
    script = textwrap.dedent(f"""
        import json, resource, sys
        from pyproj import Transformer
        from shapely.geometry import box
        from eotasks.catalog.ingest import ingest_folder
        from eotasks.db import init_db
        from eotasks.timeseries import StatsOptions
        from tests.reference import fields_statistics
        url = "sqlite:///{tmp_path / "db.sqlite"}"
        init_db(url)
        record = ingest_folder("{folder}", "sentinel2l2a", view_id="S2L2A/32/U/MU/2023/6/1/0", url=url)
        t = Transformer.from_crs(32632, 4326, always_xy=True)
        x0, y1, x1, y0 = 300000, 5000040, 300000 + {SIZE} * 10, 5000040 - {SIZE} * 10
        corners = [(x0 + 200, y1 - 300), (x1 - 300, y1 - 300), (x0 + 200, y0 + 200), (x1 - 300, y0 + 200)]
        fields = [(i, box(*t.transform(x, y), *t.transform(x + 80, y + 80))) for i, (x, y) in enumerate(corners)]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results, errors = fields_statistics(record, ["NDVI"], fields, StatsOptions(coverage="exact"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"mb": (peak - before) / 1024, "fields": len(results), "errors": errors,
                           "ndvi": [r["indexes"]["NDVI"]["average"] for r in results]}}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={"GDAL_CACHEMAX": "64", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["fields"] == 4 and not out["errors"]
    expected = ((3000e-4 - 0.1) - (800e-4 - 0.1)) / ((3000e-4 - 0.1) + (800e-4 - 0.1))  # baseline-04 offset (2023)
    assert all(abs(v - expected) < 1e-12 for v in out["ndvi"])
    print(f"peak memory of the computation: {out['mb']:.1f} MB above baseline (bound {BOUND_MB} MB)")
    assert out["mb"] < BOUND_MB, out
