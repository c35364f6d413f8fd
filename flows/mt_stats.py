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
        answer, items = time_series(params)
        publish(task_id, {"mt_stats.json": json.dumps(answer).encode()})
        publish_artifacts(task_id, answer, items)
        return answer
    except Exception as exc:
        return fail(exc)


def time_series(params: MtStatsParams) -> tuple[dict[str, Any], list[str]]:
    """scene_lookup -> batches of per-scene stats, concurrently -> the answer (flow-level code)."""
    logger = get_run_logger()
    aoi = aoi_of(params)
    check_time_series_task(params, aoi)  # before any read, as at submission
    scenes = scene_search(params, aoi)
    items = [params.bm_type] if isinstance(params.bm_type, str) else list(params.bm_type)
    options = StatsOptions(params.cloud_masking_level, params.exclude_cover_pixels, params.max_cloud_cover_in_aoi)
    workers = get_settings().mt_stats_workers
    groups = batches(scenes, workers)
    futures = [scene_batch_stats.submit(group, items, aoi, options, label=f"{i + 1}of{len(groups)}") for i, group in enumerate(groups)]
    progress = create_progress_artifact(0.0, description=f"mt_stats: scenes done of {len(scenes)}")
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    done = 0
    for future in as_completed(futures):
        batch = future.result()  # scenes never fail a batch: each lands in result or errors
        for item in batch:
            (errors if item.get("status") is False else results).append(item)
        done += len(batch)
        update_progress_artifact(progress, 100.0 * done / len(scenes))
        logger.info("scenes done: %d/%d", done, len(scenes))
    if not scenes:
        update_progress_artifact(progress, 100.0)
    return shape_answer(results, errors, params.bm_type), items


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
