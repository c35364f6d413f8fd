"""Multi-Temporal Statistics (``mt_stats``): statistics of indices over an AOI for every scene.

authentication -> scene_lookup -> per scene, concurrently: stats (crop, index, cloud mask,
statistics), in batches of scenes (see tasks/stats.py) -> gather -> publish (JSON file, table and
chart artifacts)
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_image_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.utilities.annotations import quote

from eotasks.models import MtStatsParams
from eotasks.raster.chart import timeseries_svg
from eotasks.timeseries import StatsOptions, shape_answer
from eotasks.settings import get_settings
from eotasks.store import get_store
from flows._common import fail, run_options, time_series_runner
from tasks.authentication import authenticate
from eotasks.budgets import aoi_of, check_time_series_task
from tasks.publish import publish
from tasks.search import scene_search
from tasks.stats import batches, scene_batch_stats


@flow(name="mt_stats", persist_result=True, result_serializer="json",
      task_runner=time_series_runner(), **run_options())
def mt_stats(task_id: str, api_key_id: int, params: MtStatsParams) -> Any:
    try:
        authenticate(api_key_id)
        if params.fields is not None:  # many fields: the answer is a file (JSON or CSV)
            answer, items = fields_time_series(params)
            name, data = answer_file(answer, items, params.output_format)
            files = publish(task_id, {name: data})
            publish_field_artifacts(task_id, answer, items)
            return {"files": files}
        answer, items = fields_time_series(params) if params.richer else time_series(params)
        publish(task_id, {"mt_stats.json": json.dumps(answer).encode()})
        publish_artifacts(task_id, answer, items)
        return answer
    except Exception as exc:
        return fail(exc)


def time_series(params: MtStatsParams) -> tuple[dict[str, Any], list[str]]:
    """scene_lookup -> batches of per-scene stats, concurrently -> the answer (flow-level code)."""
    aoi = aoi_of(params)
    check_time_series_task(params, aoi)  # before any read, as at submission
    scenes = scene_search(quote(params), aoi)
    items = [params.bm_type] if isinstance(params.bm_type, str) else list(params.bm_type)
    options = StatsOptions(params.cloud_masking_level, params.exclude_cover_pixels, params.max_cloud_cover_in_aoi)
    workers = get_settings().mt_stats_workers
    groups = batches(scenes, workers)
    futures = [scene_batch_stats.submit(group, items, aoi, options, label=f"{i + 1}of{len(groups)}") for i, group in enumerate(groups)]
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for batch in as_batches_finish(futures, groups, f"mt_stats: scenes done of {len(scenes)}"):
        for item in batch:  # scenes never fail a batch: each lands in result or errors
            (errors if item.get("status") is False else results).append(item)
    return shape_answer(results, errors, params.bm_type), items


def as_batches_finish(futures: list, groups: list[list], description: str):
    """Each batch's output as it finishes, with the run's progress artifact and a log line."""
    logger = get_run_logger()
    total = sum(len(g) for g in groups)
    progress = create_progress_artifact(0.0, description=description)
    sizes = {id(f): len(g) for f, g in zip(futures, groups)}
    done = 0
    for future in as_completed(futures):
        yield future.result()
        done += sizes[id(future)]
        update_progress_artifact(progress, 100.0 * done / total)
        logger.info("scenes done: %d/%d", done, total)
    if not total:
        update_progress_artifact(progress, 100.0)


def fields_time_series(params: MtStatsParams) -> tuple[dict[str, Any], list[str]]:
    """scene_lookup (scenes meeting any field) -> batches of scenes, each read once for all its fields
    -> the answer: items by field (in the order sent), then date. Without ``fields`` the AOI is the
    one field (richer statistics on a single AOI), and items carry no field_id."""
    from eotasks.fields import FieldOptions
    from tasks.stats import scene_batch_fields

    logger = get_run_logger()
    single = params.fields is None
    aoi = aoi_of(params)
    fields = [("aoi", aoi)] if single else params.field_shapes()
    check_time_series_task(params, aoi)
    # quote(): Prefect would otherwise walk every coordinate of a thousand fields to look for futures
    # in each task's inputs, twice per task (about a second a request).
    scenes = scene_search(quote(params), aoi)
    items = [params.bm_type] if isinstance(params.bm_type, str) else list(params.bm_type)
    options = FieldOptions(params.coverage, tuple(params.percentiles or ()),
                           tuple(params.histogram.bin_edges()) if params.histogram else None,
                           params.cloud_masking_level, params.exclude_cover_pixels, params.max_cloud_cover_in_aoi)
    groups = batches(scenes, get_settings().mt_stats_workers)
    futures = [scene_batch_fields.submit(group, items, quote(fields), options, label=f"{i + 1}of{len(groups)}") for i, group in enumerate(groups)]
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for r, e in as_batches_finish(futures, groups, f"mt_stats: scenes done of {len(scenes)}, {len(fields)} field(s)"):
        results += r  # scenes never fail a batch: each lands in result or errors
        errors += e
    logger.info("%d scenes x %d fields: %d results, %d left out", len(scenes), len(fields), len(results), len(errors))
    met = {r["field_id"] for r in results} | {e["field_id"] for e in errors}
    for fid, _ in fields:
        if fid not in met:
            errors.append({"status": False, "field_id": fid, "error": "No scene of the request's sensors and dates covers this field"})
    order = {fid: i for i, (fid, _) in enumerate(fields)}
    key = lambda item: (order[item["field_id"]], item.get("date", ""), item.get("view_id", ""))  # noqa: E731
    results.sort(key=key)
    errors.sort(key=key)
    if isinstance(params.bm_type, str):
        flat = []
        for item in results:
            one = {k: v for k, v in item.items() if k != "indexes"}
            one.update(item["indexes"][params.bm_type])
            flat.append(one)
        results = flat
    if single:
        results = [{k: v for k, v in r.items() if k != "field_id"} for r in results]
        errors = [{k: v for k, v in e.items() if k != "field_id"} for e in errors]
    return {"errors": errors, "result": results}, items


CSV_STATS = ("count", "nodata_count", "average", "median", "min", "max", "std", "variance", "q1", "q3", "p10", "p90")


def answer_file(answer: dict[str, Any], items: list[str], output_format: str) -> tuple[str, bytes]:
    """The fields answer as ``mt_stats_fields.json``, or ``.csv``: one row per field, scene and index
    (percentiles and histogram counts as their own columns; a left-out field and scene as a row with
    its error)."""
    if output_format == "json":
        import orjson  # Prefect's own dependency: several times faster than json on a 24 MB answer

        return "mt_stats_fields.json", orjson.dumps(answer)
    import csv
    import io

    percentiles: list[str] = []
    hist_bins = 0
    for r in answer["result"]:
        for s in (r["indexes"].values() if "indexes" in r else [r]):
            percentiles += [p for p in (s.get("percentiles") or {}) if p not in percentiles]
            hist_bins = max(hist_bins, len((s.get("histogram") or {}).get("counts", [])))
    header = ["field_id", "date", "view_id", "scene_id", "index", "cloud", *CSV_STATS, *[f"p_{p}" for p in percentiles]]
    if hist_bins:
        header += ["hist_underflow", *[f"hist_{i}" for i in range(hist_bins)], "hist_overflow"]
    header.append("error")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for r in answer["result"]:
        stats = r["indexes"] if "indexes" in r else {items[0]: r}
        for item, s in stats.items():
            row = [r["field_id"], r["date"], r["view_id"], r["scene_id"], item, r["cloud"], *[s.get(k) for k in CSV_STATS],
                   *[(s.get("percentiles") or {}).get(p) for p in percentiles]]
            if hist_bins:
                h = s.get("histogram") or {}
                row += [h.get("underflow"), *(h.get("counts") or [None] * hist_bins), h.get("overflow")]
            writer.writerow(row + [""])
    for e in answer["errors"]:
        writer.writerow([e["field_id"], e.get("date", ""), e.get("view_id", ""), e.get("scene_id", "")] + [""] * (len(header) - 5) + [e["error"]])
    return "mt_stats_fields.csv", out.getvalue().encode()


def publish_field_artifacts(task_id: str, answer: dict[str, Any], items: list[str]) -> None:
    """What an operator sees of thousands of fields: one row per field (scenes used, latest value,
    season min and max of its average) and a chart of the distribution over fields by date."""
    import numpy as np

    item = items[0]
    per_field: dict[Any, list[tuple[str, float]]] = {}
    for r in answer["result"]:
        s = r["indexes"][item] if "indexes" in r else r
        per_field.setdefault(r["field_id"], []).append((r["date"], s["average"]))
    rows = []
    for fid, series in per_field.items():
        values = [v for _, v in series]
        rows.append({"field_id": fid, "scenes": len(series), "latest date": series[-1][0], f"latest {item}": round(series[-1][1], 4),
                     "season min": round(min(values), 4), "season max": round(max(values), 4)})
    left = len({e["field_id"] for e in answer["errors"]} - set(per_field))
    create_table_artifact(rows, description=f"{task_id}: {len(per_field)} fields with results ({item}), {left} without any")
    by_date: dict[str, list[float]] = {}
    for fid, series in per_field.items():
        for date, value in series:
            by_date.setdefault(date, []).append(value)
    if by_date:
        distribution = {"errors": [], "result": [{"date": d, "indexes": {item: {"average": float(np.median(v)), "q1": float(np.percentile(v, 25)),
                                                                   "q3": float(np.percentile(v, 75))}}} for d, v in sorted(by_date.items())]}
        store = get_store()
        key = store.put(f"{task_id}/fields.svg", timeseries_svg(distribution, [item]))
        create_image_artifact(image_url=store.download_url(key, ttl_s=30 * 86400),
                              description=f"{item}: median and q1-q3 of the fields' averages, by date")


def publish_artifacts(task_id: str, answer: dict[str, Any], items: list[str]) -> None:
    """A table of the per-scene results and a chart, so an operator sees the answer in the UI."""
    rows = []
    for r in answer["result"]:
        stats = r["indexes"] if "indexes" in r else {items[0]: r}
        for item, s in stats.items():
            rows.append({"date": r["date"], "view_id": r["view_id"], "index": item, "cloud %": round(r["cloud"], 2),
                         **{k: round(s[k], 4) for k in ("average", "median", "min", "max", "q1", "q3", "std")}})
    for e in answer["errors"]:
        rows.append({"date": e["date"], "view_id": e["view_id"], "index": "-", "error": e["error"]})
    create_table_artifact(rows, description=f"{task_id}: {len(answer['result'])} scenes, {len(answer['errors'])} left out")
    if answer["result"]:
        store = get_store()
        key = store.put(f"{task_id}/timeseries.svg", timeseries_svg(answer, items))
        create_image_artifact(image_url=store.download_url(key, ttl_s=30 * 86400), description="average and q1-q3 band per index")
