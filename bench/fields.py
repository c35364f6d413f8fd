"""Benchmark: 1,000 fields over a 50-scene year, NDVI with exact coverage, four ways in one run.

    uv run python bench/fields.py [--fields 1000] [--scenes 50] [--no-gateway]

(a) eotasks, one ``fields`` request: in process (the flow called directly, Prefect's ephemeral API)
    and through the whole service (Prefect server, warm worker, gateway: POST -> file);
(b) the peer a user would write: per scene, the NDVI raster read with rasterio and
    ``exactextract.exact_extract`` over all fields;
(c) rasterstats per field and scene (the common slow path), on a subset, extrapolated;
(d) 1,000 single-field requests, from the measured cost of a few (in process).
Prints seconds, field-scenes/s and ratios, and checks every (a) answer against (b)'s: average,
variance, min, max and count within 1e-6 (quantiles of tied values depend on the order of the ties;
see the README). Fields are irregular polygons of 0.5-20 ha (log-uniform) anywhere in a 10.2 km
demo area (they may overlap, which costs nothing extra to anyone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO  # noqa: F401  (puts the repository on sys.path)

WORK = Path(tempfile.mkdtemp(prefix="eotasks-bench-fields-"))
os.environ["EOTASKS_DATA_DIR"] = str(WORK / "data")
os.environ["EOTASKS_DATABASE_URL"] = f"sqlite:///{WORK / 'eotasks.db'}"
os.environ["EOTASKS_STORE_URL"] = str(WORK / "results")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def make_fields(n: int, size_m: int, seed: int = 5) -> list[dict]:
    """n irregular 5-8-gons, area log-uniform in 0.5-20 ha, inside the demo area (lon/lat GeoJSON)."""
    import shapely
    from pyproj import Transformer
    from shapely.geometry import Polygon, mapping

    from eotasks.catalog.demo import CRS, ORIGIN

    rng = np.random.default_rng(seed)
    to_ll = Transformer.from_crs(CRS, 4326, always_xy=True).transform
    out = []
    while len(out) < n:
        area = math.exp(rng.uniform(math.log(5_000), math.log(200_000)))  # m2
        k = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, k))
        radii = rng.uniform(0.75, 1.25, k)
        ring = np.column_stack([radii * np.cos(angles) * rng.uniform(1, 1.8), radii * np.sin(angles)])
        poly = Polygon(ring)
        if not poly.is_valid or poly.area == 0:
            continue
        scale = math.sqrt(area / poly.area)
        half = 0.6 * math.sqrt(area) * 2
        cx = ORIGIN[0] + rng.uniform(half + 100, size_m - half - 100)
        cy = ORIGIN[1] - rng.uniform(half + 100, size_m - half - 100)
        shape_utm = Polygon(ring * scale + [cx, cy])
        lonlat = shapely.transform(shape_utm, lambda xy: np.column_stack(to_ll(xy[:, 0], xy[:, 1])))
        out.append({"type": "Feature", "id": f"f{len(out):04d}", "properties": {}, "geometry": mapping(lonlat)})
    return out


def peer_exactextract(records, features) -> dict[tuple[str, str], dict]:
    """(b): per scene, read the NDVI inputs with rasterio and run exact_extract over every field."""
    import rasterio
    from exactextract import exact_extract
    from exactextract.feature import JSONFeatureSource
    from exactextract.raster import NumPyRasterSource
    from shapely.geometry import mapping, shape

    from eotasks.raster.aoi import to_crs

    out = {}
    utm = None
    for r in records:
        with (
            rasterio.open(r.assets["B04"]["href"]) as red,
            rasterio.open(r.assets["B08"]["href"]) as nir,
            rasterio.open(r.assets["SCL"]["href"]) as scl_src,
        ):
            red_dn, nir_dn = red.read(1), nir.read(1)
            scl = scl_src.read(1, out_shape=red_dn.shape, resampling=rasterio.enums.Resampling.nearest)
            t, crs = red.transform, red.crs.to_string()
        a, b = r.assets["B04"], r.assets["B08"]
        with np.errstate(all="ignore"):
            rr, nn = red_dn * a["scale"] + a["offset"], nir_dn * b["scale"] + b["offset"]
            ndvi = (nn - rr) / (nn + rr)
        ndvi[(red_dn == 0) | (nir_dn == 0) | (scl <= 1) | ~np.isfinite(ndvi)] = np.nan
        if utm is None:
            utm = [
                {
                    "type": "Feature",
                    "id": i,
                    "properties": {"fid": f["id"]},
                    "geometry": mapping(to_crs(shape(f["geometry"]), crs)),
                }
                for i, f in enumerate(features)
            ]
        h, w = ndvi.shape
        source = NumPyRasterSource(ndvi, xmin=t.c, ymin=t.f + h * t.e, xmax=t.c + w * t.a, ymax=t.f, nodata=np.nan)
        for feat in exact_extract(
            source, JSONFeatureSource(utm), ["mean", "variance", "min", "max", "count"], include_cols=["fid"], output="geojson"
        ):
            p = feat["properties"]
            out[(p["fid"], r.date.isoformat())] = p
    return out


def rasterstats_subset(records, features, n_fields: int, n_scenes: int) -> float:
    """(c): seconds for rasterstats over n_fields x n_scenes (per field and scene, re-reading)."""
    import rasterio
    from rasterstats import zonal_stats
    from shapely.geometry import shape

    from eotasks.raster.aoi import to_crs

    t0 = time.perf_counter()
    for r in records[:n_scenes]:
        for f in features[:n_fields]:
            with rasterio.open(r.assets["B04"]["href"]) as red, rasterio.open(r.assets["B08"]["href"]) as nir:
                geom = to_crs(shape(f["geometry"]), red.crs.to_string())
                win = red.window(*geom.bounds).round_offsets().round_lengths()
                rr = red.read(1, window=win, boundless=True) * 1e-4 - 0.1
                nn = nir.read(1, window=win, boundless=True) * 1e-4 - 0.1
                with np.errstate(all="ignore"):
                    ndvi = (nn - rr) / (nn + rr)
                zonal_stats(geom, ndvi, affine=red.window_transform(win), stats=["mean", "median", "count"], nodata=np.nan)
    return time.perf_counter() - t0


def through_gateway(records_dir: Path, db_url: str, body: dict) -> float:
    """(a) through the service: Prefect server, warm worker, gateway; POST -> the answer file."""
    import httpx

    from eotasks.db import create_api_key
    from eotasks.launcher import Service, free_port, service_env

    root = WORK / "service"
    root.mkdir()
    prefect_port, gateway_port = free_port(), free_port()
    env = service_env(
        root,
        prefect_port,
        {
            "EOTASKS_PORT": str(gateway_port),
            "EOTASKS_DATABASE_URL": db_url,
            "EOTASKS_STORE_URL": str(WORK / "results"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        },
    )
    key, _ = create_api_key("bench-fields", url=db_url)
    service = Service(env, root / "logs")
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        service.start_serve(["mt_stats/eotasks"])
        service.start_gateway("127.0.0.1", gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        with httpx.Client(timeout=60) as client:

            def once() -> float:
                t0 = time.perf_counter()
                task = client.post(f"{base}/api", params={"api_key": key}, json=body).json()["task_id"]
                while True:
                    r = client.get(f"{base}/api/{task}", params={"api_key": key})
                    if r.status_code == 303:
                        client.get(r.headers["Location"]).raise_for_status()
                        return time.perf_counter() - t0
                    assert r.json().get("task_type") in ("created", "started"), r.text
                    time.sleep(0.2)

            once()  # warm-up: the worker's first run fills the coverage cache of nothing (a new process per run)
            return statistics.median(once() for _ in range(2))
    finally:
        service.stop(grace=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=1000)
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--size-m", type=int, default=10200)
    parser.add_argument("--no-gateway", action="store_true")
    args = parser.parse_args()

    from eotasks.catalog.demo import generate_demo
    from eotasks.db import create_api_key, init_db
    from eotasks.models import MtStatsParams
    from flows.mt_stats import mt_stats

    init_db()
    print(f"writing {args.scenes} Sentinel-2 L2A demo scenes of {args.size_m / 1000:g} km in {WORK} ...", flush=True)
    records = generate_demo(WORK / "demo", s2_scenes=args.scenes, landsat_scenes=0, s2_every_days=7, size_m=args.size_m)
    features = make_fields(args.fields, args.size_m)
    fc = {"type": "FeatureCollection", "features": features}
    _, key = create_api_key("bench")
    request = dict(
        date_start="2023-01-01",
        date_end="2023-12-31",
        bm_type="NDVI",
        fields=fc,
        coverage="exact",
        sensors=["sentinel2l2a"],
        limit=args.scenes,
        exclude_cover_pixels=False,
    )
    params = MtStatsParams(**request)
    n = args.fields * args.scenes

    # (a) in process: one flow run (after a warm-up that starts the ephemeral API).
    mt_stats(task_id="00000000-0000-4000-8000-0000000000f0", api_key_id=key.id, params=MtStatsParams(**{**request, "limit": 1}))
    t0 = time.perf_counter()
    out = mt_stats(task_id="00000000-0000-4000-8000-0000000000f1", api_key_id=key.id, params=params)
    a_in = time.perf_counter() - t0
    answer = json.loads((WORK / "results" / out["files"][0]).read_bytes())

    # (b) the peer.
    t0 = time.perf_counter()
    peer = peer_exactextract(records, features)
    b = time.perf_counter() - t0
    worst, compared = 0.0, 0
    for item in answer["result"]:
        p = peer[(item["field_id"], item["date"])]
        for ours, theirs in (("average", "mean"), ("variance", "variance"), ("min", "min"), ("max", "max"), ("count", "count")):
            rel = abs(item[ours] - p[theirs]) / max(abs(p[theirs]), 1e-12)
            worst = max(worst, rel)
        compared += 1
    # What we left out (a field with no valid pixel in a scene) is what exactextract counts as empty.
    ours_errors = {(e["field_id"], e.get("date")) for e in answer["errors"]}
    answered = {(i["field_id"], i["date"]) for i in answer["result"]}
    missing = [k for k in peer if k not in answered]
    assert all(peer[k]["count"] == 0 and k in ours_errors for k in missing), [(k, peer[k]) for k in missing[:3]]
    assert compared + len(missing) == len(peer) and worst < 1e-6, (compared, len(missing), len(peer), worst)

    # (c) rasterstats on a subset, extrapolated; (d) single-field requests, extrapolated.
    sub_f, sub_s = 50, 4
    c = rasterstats_subset(records, features, sub_f, sub_s) * n / (sub_f * sub_s)
    singles = []
    for f in features[:3]:
        one = MtStatsParams(**{**request, "fields": None, "geometry": f["geometry"]})
        t0 = time.perf_counter()
        mt_stats(task_id="00000000-0000-4000-8000-0000000000f2", api_key_id=key.id, params=one)
        singles.append(time.perf_counter() - t0)
    d = statistics.mean(singles) * args.fields

    rows = [
        ("(a) eotasks, one fields request, in process", a_in),
        ("(b) rasterio + exactextract per scene", b),
        (f"(c) rasterstats per field and scene ({sub_f}x{sub_s} measured)", c),
        (f"(d) {args.fields} single-field requests (3 measured, in process)", d),
    ]
    if not args.no_gateway:
        body = {"type": "mt_stats", "params": dict(request.items())}
        rows.insert(
            1,
            (
                "(a) eotasks, through the gateway (POST -> file)",
                through_gateway(WORK / "demo", os.environ["EOTASKS_DATABASE_URL"], body),
            ),
        )
    print(f"\n{args.fields} fields x {args.scenes} scenes = {n:,} field-scenes, NDVI, exact coverage, on {os.cpu_count()} cores")
    print(f"every answer equal to (b)'s: average, variance, min, max, count within {worst:.1e} relative")
    print(f"{'':58s} {'seconds':>9s} {'field-scenes/s':>15s} {'vs (b)':>8s}")
    for name, seconds in rows:
        print(f"{name:58s} {seconds:9.2f} {n / seconds:15.0f} {seconds / b:7.2f}x")


if __name__ == "__main__":
    main()
