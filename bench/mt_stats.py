"""Benchmark: one 50-scene mt_stats request, through the flow and as a plain rasterio + numpy loop.

    uv run python bench/mt_stats.py [--scenes 50] [--repeat 3]

Both run in this one process over the same demo scenes: the flow in-process (Prefect's ephemeral
API, no server process), with 1, 2 and 4 threads in its task runner; the baseline as a plain loop of
rasterio windowed reads + numpy doing the same work (NDVI, SCL/QA_PIXEL cloud mask at level 1,
the ten statistics). Prints scenes/s for each and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="eotasks-bench-"))
os.environ.update(
    {
        "EOTASKS_DATA_DIR": str(WORK / "data"),
        "PREFECT_HOME": str(WORK / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
)
os.environ.pop("PREFECT_API_URL", None)

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
import shapely  # noqa: E402
from pyproj import Transformer  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.features import geometry_mask  # noqa: E402
from rasterio.windows import Window, from_bounds  # noqa: E402
from shapely.geometry import box, mapping  # noqa: E402
from shapely.ops import transform as shp_transform  # noqa: E402


def read_scene(r, aoi_lonlat):
    """One scene over the AOI as a hand-written script reads it: NDVI, and the masks it needs."""
    red_name, nir_name = ("B04", "B08") if r.sensor == "sentinel2l2a" else ("B4", "B5")
    with (
        rasterio.open(r.assets[red_name]["href"]) as red,
        rasterio.open(r.assets[nir_name]["href"]) as nir,
        rasterio.open(r.assets[r.mask_band]["href"]) as qa,
    ):
        # SPEC's AOI: lon/lat edges, followed (densified to 0.001 degrees) into the scene's CRS;
        # the pixels whose centres lie within its bounds.
        to_utm = Transformer.from_crs(4326, red.crs, always_xy=True).transform
        aoi = shp_transform(to_utm, shapely.segmentize(aoi_lonlat, 0.001))
        t0 = red.transform
        minx, miny, maxx, maxy = aoi.bounds
        c0, c1 = int(np.ceil((minx - t0.c) / t0.a - 0.5)), int(np.floor((maxx - t0.c) / t0.a - 0.5))
        r0, r1 = int(np.ceil((t0.f - maxy) / -t0.e - 0.5)), int(np.floor((t0.f - miny) / -t0.e - 0.5))
        w = Window(c0, r0, c1 - c0 + 1, r1 - r0 + 1)
        t = red.window_transform(w)
        red_dn = red.read(1, window=w).astype(np.float64)
        nir_dn = nir.read(1, window=w).astype(np.float64)
        mask = qa.read(
            1,
            window=from_bounds(*rasterio.windows.bounds(w, red.transform), transform=qa.transform),
            out_shape=red_dn.shape,
            resampling=Resampling.nearest,
        )
    inside = geometry_mask([mapping(aoi)], out_shape=red_dn.shape, transform=t, invert=True)
    s, o = r.assets[red_name]["scale"], r.assets[red_name]["offset"]
    rr, nn = red_dn * s + o, nir_dn * s + o
    with np.errstate(all="ignore"):
        ndvi = (nn - rr) / (nn + rr)
    # SPEC's definitions: the mask's fill (SCL 0 and 1, QA_PIXEL's fill bit) classifies nothing;
    # cloud is the flagged share of the AOI pixels the mask classifies.
    usable = ~np.isin(mask, (0, 1)) if r.mask_band == "SCL" else (mask & 1) == 0
    cloud = (mask == 9 if r.mask_band == "SCL" else ((mask >> 8) & 3) == 3) & usable
    valid = inside & usable & (red_dn != 0) & (nir_dn != 0) & np.isfinite(ndvi) & ~cloud
    return ndvi, inside, usable, cloud, valid


def ten_statistics(v) -> dict:
    p10, q1, med, q3, p90 = np.percentile(v, [10, 25, 50, 75, 90])
    return {
        "min": v.min(),
        "max": v.max(),
        "average": v.mean(),
        "median": med,
        "std": v.std(),
        "variance": v.var(),
        "q1": q1,
        "q3": q3,
        "p10": p10,
        "p90": p90,
    }


def baseline(records, aoi_lonlat) -> list[dict]:
    """What a hand-written script does: for each scene, windowed reads, NDVI, mask, statistics."""
    out = []
    for r in records:
        ndvi, inside, usable, cloud, valid = read_scene(r, aoi_lonlat)
        out.append(
            {
                "date": r.date.isoformat(),
                "view_id": r.view_id,
                "cloud": 100 * (cloud & inside).sum() / (inside & usable).sum(),
                **ten_statistics(ndvi[valid]),
            }
        )
    return out


def composite_baseline(records, aoi_lonlat, spans) -> list[dict]:
    """The same by hand for SPEC §6: per interval, every scene's clear NDVI stacked, numpy's
    nanmedian per pixel, the statistics over the AOI (one sensor: one grid)."""
    out = []
    for first, last in spans:
        members = [r for r in records if first <= r.date <= last]
        if not members:
            continue
        planes, inside = [], None
        for r in members:
            ndvi, inside, _, _, valid = read_scene(r, aoi_lonlat)
            planes.append(np.where(valid, ndvi, np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(np.stack(planes), axis=0)
        v = median[inside & np.isfinite(median)]
        out.append({"interval": [first.isoformat(), last.isoformat()], **ten_statistics(v)})
    return out


def same_answers(answer: dict, expected: list[dict]) -> None:
    """The flow and the loop computed the same thing: scene by scene, every statistic and the cloud."""
    got = {item["view_id"]: item for item in answer["result"]}
    assert not answer["errors"] and set(got) == {item["view_id"] for item in expected}, (
        answer["errors"][:3],
        len(got),
        len(expected),
    )
    for theirs in expected:
        mine = got[theirs["view_id"]]
        for k, want in theirs.items():
            if k in ("date", "view_id"):
                assert mine[k] == want, (mine[k], want)
            else:
                assert abs(mine[k] - want) <= 1e-9 * max(1.0, abs(want)), (theirs["view_id"], k, mine[k], want)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-m", type=int, default=10200, help="side of the demo area; the AOI is that less 100 m a side")
    args = parser.parse_args()

    from prefect.task_runners import ThreadPoolTaskRunner

    from eotasks.catalog.demo import CRS, ORIGIN, generate_demo
    from eotasks.db import create_api_key, init_db
    from eotasks.models import MtStatsParams
    from flows.mt_stats import mt_stats

    init_db()
    s2 = args.scenes * 27 // 50
    print(f"writing {args.scenes} demo scenes ({s2} Sentinel-2 L2A, {args.scenes - s2} Landsat 8) in {WORK} ...")
    records = generate_demo(WORK / "demo", s2_scenes=s2, landsat_scenes=args.scenes - s2, s2_every_days=13, size_m=args.size_m)
    _, key = create_api_key("bench")
    # Nearly the whole demo area: 1000 x 1000 px at 10 m and 333 x 333 at 30 m by default.
    size = args.size_m
    utm = box(ORIGIN[0] + 100, ORIGIN[1] - size + 100, ORIGIN[0] + size - 100, ORIGIN[1] - 100)
    aoi = shp_transform(Transformer.from_crs(CRS, 4326, always_xy=True).transform, utm)
    params = MtStatsParams(
        date_start="2023-01-01",
        date_end="2023-12-31",
        bm_type="NDVI",
        geometry=mapping(aoi),
        sensors=["sentinel2l2a", "landsat8"],
        limit=args.scenes,
    )

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    base_s = timed(lambda: baseline(records, aoi))
    rows = [("plain rasterio + numpy loop", base_s)]
    expected = baseline(records, aoi)
    # Prefect's fixed cost of one flow run (create, orchestrate, persist, heartbeat join at exit),
    # measured with a one-scene request: what the plain loop never pays.
    one = params.model_copy(update={"limit": 1})
    mt_stats(task_id="00000000-0000-4000-8000-000000000000", api_key_id=key.id, params=one)
    fixed_s = timed(lambda: mt_stats(task_id="00000000-0000-4000-8000-000000000000", api_key_id=key.id, params=one))
    for workers in (1, 2, 4):
        flow = mt_stats.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))

        def run(flow=flow):  # type: ignore[no-untyped-def]
            return flow(task_id="00000000-0000-4000-8000-000000000000", api_key_id=key.id, params=params)

        answer = run()  # warm-up: the ephemeral API starts on the first run
        assert len(answer["result"]) + len(answer["errors"]) == args.scenes, answer["errors"][:3]
        same_answers(answer, expected)
        rows.append((f"mt_stats flow, {workers} thread{'s' if workers > 1 else ''}", timed(run)))

    # SPEC §6: monthly median composites of the Sentinel-2 scenes, the flow beside a hand-written loop.
    from eotasks.intervals import intervals
    from eotasks.models import Aggregation

    s2_records = [r for r in records if r.sensor == "sentinel2l2a"]
    monthly = params.model_copy(
        update={"sensors": ["sentinel2l2a"], "aggregation": Aggregation(period="month", composite="median")}
    )
    spans = intervals(params.date_start, params.date_end, "month")
    composite_s = timed(lambda: composite_baseline(s2_records, aoi, spans))
    expected_months = composite_baseline(s2_records, aoi, spans)

    def run_monthly():  # type: ignore[no-untyped-def]
        return mt_stats(task_id="00000000-0000-4000-8000-000000000000", api_key_id=key.id, params=monthly)

    answer = run_monthly()
    got = {tuple(item["interval"]): item for item in answer["result"]}
    for want in expected_months:
        mine = got[tuple(want["interval"])]
        for k, value in want.items():
            if k != "interval":
                assert abs(mine[k] - value) <= 1e-9 * max(1.0, abs(value)), (want["interval"], k, mine[k], value)
    flow_composite_s = timed(run_monthly)

    px = round((size - 200) / 10)
    print(f"\n{args.scenes} scenes, AOI {px} x {px} px (Sentinel-2), median of {args.repeat} runs, on {os.cpu_count()} cores")
    print(f"{'':34s} {'seconds':>8s} {'scenes/s':>9s} {'time vs baseline':>17s} {'scenes/s past the fixed cost':>29s}")
    for name, seconds in rows:
        marginal = "" if name.startswith("plain") else f"{(args.scenes - 1) / max(seconds - fixed_s, 1e-9):29.1f}"
        print(f"{name:34s} {seconds:8.2f} {args.scenes / seconds:9.1f} {seconds / base_s:16.2f}x {marginal}")
    print(f"fixed cost of one flow run (a one-scene request): {fixed_s:.2f} s")
    past = (flow_composite_s - fixed_s) / composite_s
    print(
        f"\nmonthly median composites of {len(s2_records)} Sentinel-2 scenes ({len(expected_months)} months with scenes): "
        f"plain loop {composite_s:.2f} s, flow {flow_composite_s:.2f} s ({flow_composite_s / composite_s:.2f}x; "
        f"{past:.2f}x past the fixed cost); the answers equal"
    )


if __name__ == "__main__":
    main()
