"""openEO: a small synchronous request, and a year of dekadal NDVI means over 100 fields as a batch
job beside the equivalent mt_stats task; bounded in time, everything on 127.0.0.1.

    uv run python bench/openeo.py [--requests 10] [--fields 100]

Starts the embedded default in processes (Prefect server on SQLite, the warm worker, one gateway),
with the real sample crop and the demo series, then:
  (a) sync: NDVI of a field of the crop, one date, GTiff, POST -> file through ``/result`` with the
      openEO Python client, ``--requests`` times (after one warm-up); p50 and max; beside the same
      computation in this process (the graph evaluated without Prefect or HTTP), p50.
  (b) batch: a year of dekadal mean NDVI over ``--fields`` fields (aggregate_temporal_period +
      aggregate_spatial, JSON) as a batch job through ``execute_batch``, beside the mt_stats task
      with ``aggregation: {"period": "dekad", "composite": "mean"}`` and the same fields.
Prints seconds and ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import REPO, SAMPLE, VIEW_ID  # noqa: F401  (puts the repository on sys.path)

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.ingest import ingest_folder
from eotasks.db import create_api_key, init_db
from eotasks.launcher import Service, free_port, service_env

FIELD = {
    "type": "Polygon",
    "coordinates": [[[-75.655, 37.685], [-75.635, 37.684], [-75.640, 37.703], [-75.655, 37.685]]],
}


def sync_graph(con, extent):
    cube = con.load_collection(
        "SENTINEL2_L1C", spatial_extent=extent, temporal_extent=["2020-06-15", "2020-06-16"], bands=["B04", "B08"]
    )
    return cube.ndvi().mask_polygon(FIELD).save_result(format="GTiff")


def many_fields(n: int) -> dict:
    """``n`` fields: the demo's parcels, cut into smaller squares where more are asked for."""
    from shapely.geometry import box, mapping, shape

    parcels = [shape(f["geometry"]) for f in demo_fields()]
    out = []
    k = 1
    while len(out) < n:
        out = []
        for p in parcels:
            minx, miny, maxx, maxy = p.bounds
            dx, dy = (maxx - minx) / k, (maxy - miny) / k
            for i in range(k):
                for j in range(k):
                    cell = box(minx + i * dx, miny + j * dy, minx + (i + 1) * dx, miny + (j + 1) * dy).intersection(p)
                    if cell.area > 0:
                        out.append({"type": "Feature", "properties": {"id": f"f{len(out)}"}, "geometry": mapping(cell)})
        k += 1
    return {"type": "FeatureCollection", "features": out[:n]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--fields", type=int, default=100)
    args = parser.parse_args()

    # This file is named after the API it measures: keep it from shadowing the openEO client package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    import openeo

    root = Path(tempfile.mkdtemp(prefix="eotasks-openeo-bench-"))
    prefect_port, gateway_port = free_port(), free_port()
    env = service_env(root, prefect_port, {"EOTASKS_PORT": str(gateway_port), "PREFECT_LOGGING_LEVEL": "WARNING"})
    db_url = f"sqlite:///{root / 'eotasks.db'}"
    init_db(db_url)
    ingest_folder(SAMPLE, "sentinel2", view_id=VIEW_ID, platform="S2A", url=db_url)
    generate_demo(root / "demo", s2_scenes=24, landsat_scenes=0, url=db_url)
    key, _ = create_api_key("bench", url=db_url)
    service = Service(env, root / "logs")
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        service.start_serve(["openeo/eotasks", "mt_stats/eotasks"])
        service.start_gateway("127.0.0.1", gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        con = openeo.connect(f"{base}/openeo/1.2").authenticate_basic("bench", key)
        print(f"{os.cpu_count()} cores; embedded default (SQLite), warm worker")

        # (a) a small synchronous request.
        from shapely.geometry import shape

        west, south, east, north = shape(FIELD).bounds
        extent = {"west": west, "south": south, "east": east, "north": north}
        graph = sync_graph(con, extent)
        out = root / "ndvi.tif"
        graph.download(out)  # warm-up
        sync = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            graph.download(out)
            sync.append(time.perf_counter() - t0)

        os.environ["EOTASKS_DATABASE_URL"] = db_url
        from eotasks.openeo.graph import Evaluator
        from eotasks.openeo.load import CubeEnv
        from eotasks.settings import reset_settings

        reset_settings()
        flat = graph.flat_graph()
        local = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            Evaluator(CubeEnv(max_pixels=10**9)).evaluate(flat)
            local.append(time.perf_counter() - t0)
        p50, local_p50 = statistics.median(sync), statistics.median(local)
        print(
            f"(a) sync NDVI GTiff through /result: p50 {p50:.2f} s, max {max(sync):.2f} s over {args.requests}; "
            f"in process {local_p50 * 1000:.0f} ms; the service adds {p50 - local_p50:.2f} s"
        )

        # (b) a year of dekadal means over the fields: a batch job beside mt_stats.
        fields = many_fields(args.fields)
        from shapely.geometry import shape as to_shape
        from shapely.ops import unary_union

        bounds = unary_union([to_shape(f["geometry"]) for f in fields["features"]]).bounds
        area = dict(zip(("west", "south", "east", "north"), bounds, strict=True))
        cube = con.load_collection(
            "SENTINEL2_L2A", spatial_extent=area, temporal_extent=["2023-01-01", "2024-01-01"], bands=["B04", "B08"]
        )
        dekads = cube.ndvi().aggregate_temporal_period("dekad", "mean").aggregate_spatial(fields, "mean")
        t0 = time.perf_counter()
        job = dekads.save_result(format="JSON").create_job(title="dekadal NDVI")
        job.start_and_wait(max_poll_interval=1, print=lambda *a, **k: None)
        batch_s = time.perf_counter() - t0
        import json

        [result] = [p for p in job.get_results().download_files(root / "job") if Path(p).name == "openEO.json"]
        table = json.loads(Path(result).read_text())
        filled = sum(v[0] is not None for geoms in table.values() for v in geoms)
        assert job.status() == "finished" and len(table) >= 30, (job.status(), len(table))
        client = httpx.Client(timeout=600, headers={"x-api-key": key})
        body = {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-12-31",
                "bm_type": "NDVI",
                "fields": fields,
                "sensors": ["sentinel2l2a"],
                "aggregation": {"period": "dekad", "composite": "mean"},
            },
        }
        t0 = time.perf_counter()
        task = client.post(f"{base}/api", json=body).json()["task_id"]
        while client.get(f"{base}/api/{task}", params={"wait": 30, "redirect": "false"}).json().get("task_type") not in (
            "finished",
            "failed",
        ):
            pass
        task_s = time.perf_counter() - t0
        answer = client.get(f"{base}/api/{task}", params={"redirect": "false"}).json()
        assert answer.get("task_type") == "finished", answer
        print(f"    openEO: {len(table)} dekads x {len(fields['features'])} fields, {filled} with a mean")
        print(
            f"(b) {len(fields['features'])} fields x a year of dekads: openEO batch job {batch_s:.1f} s, "
            f"mt_stats task {task_s:.1f} s, ratio {batch_s / task_s:.2f}x"
        )
        client.close()
    finally:
        service.stop(grace=5)


if __name__ == "__main__":
    main()
