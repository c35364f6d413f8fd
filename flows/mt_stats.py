"""Multi-Temporal Statistics (``mt_stats``): statistics of indices over an AOI, or over many fields,
for every scene.

authentication -> scene_lookup -> stats (batches of scenes, concurrently; each scene read once for
all its fields) -> publish (the answer: JSON, or a JSON or CSV file for fields; table and chart
artifacts)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

import orjson
from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed

from eotasks.budget import aoi_of, check_time_series_task
from eotasks.models import MtStatsParams
from eotasks.sensors import OPTICAL_SENSORS
from eotasks.settings import get_settings
from eotasks.stats_answer import TimeSeriesAnswer
from eotasks.timeseries import Field, Fields, IntervalRef, SceneOutcome, SkippedRow, StatsOptions
from flows._common import task_flow, time_series_runner
from tasks.artifacts import field_artifacts, series_artifacts
from tasks.authentication import authenticate
from tasks.publish import publish
from tasks.scene_lookup import lookup_scenes
from tasks.stats import batches, interval_stats, stats


@task_flow("mt_stats", task_runner=time_series_runner())
def mt_stats(task_id: str, api_key_id: int, params: MtStatsParams) -> Any:
    authenticate(api_key_id)
    answer = time_series(params)
    if params.fields is not None:  # many fields: the answer is a file (JSON or CSV)
        files = publish(task_id, {f"mt_stats_fields.{params.output_format}": answer})
        field_artifacts(task_id, answer)
        return {"files": files}
    result = answer.as_dict()
    publish(task_id, {"mt_stats.json": orjson.dumps(result)})
    series_artifacts(task_id, answer)
    return result


def stats_options(params: MtStatsParams) -> StatsOptions:
    return StatsOptions(
        params.cloud_masking_level,
        params.exclude_cover_pixels,
        params.max_cloud_cover_in_aoi,
        params.coverage,
        tuple(params.percentiles or ()),
        tuple(params.histogram.bin_edges()) if params.histogram else None,
        richer=params.richer,
    )


def time_series(params: MtStatsParams) -> TimeSeriesAnswer:
    """scene_lookup -> batches of scenes, concurrently -> the answer, row by row as batches finish.
    Without ``fields`` the AOI is the one field, and items carry no field_id."""
    aoi = aoi_of(params)
    check_time_series_task(params, aoi)  # before any read, as at submission
    fields = Fields([Field(None, aoi)] if params.fields is None else [Field(fid, shape) for fid, shape in params.field_shapes()])
    scenes = lookup_scenes(list(params.sensors or OPTICAL_SENSORS), params.date_start, params.date_end, aoi, params.limit)
    answer = TimeSeriesAnswer(
        params.bm_type,
        {f.id: i for i, f in enumerate(fields)},
        params.output_format,
        tuple(params.percentiles or ()),
        len(params.histogram.bin_edges()) - 1 if params.histogram else 0,
    )
    if params.aggregation is not None:
        return by_interval(params, scenes, fields, answer)
    groups = batches(scenes, get_settings().mt_stats_workers)
    # SPEC §5: with an output grid every scene is warped onto it; else each on its native grid.
    grid = (
        composite_grid(params, scenes, list(params.sensors or OPTICAL_SENSORS), answer.indices, fields)
        if (scenes and params.output_requested)
        else None
    )
    futures = [
        stats.submit(group, answer.indices, fields, stats_options(params), f"{i + 1}of{len(groups)}", grid, params.resample)
        for i, group in enumerate(groups)
    ]
    met: set[Any] = set()
    described = f"mt_stats: scenes done of {len(scenes)}" + (f", {len(fields)} field(s)" if params.fields is not None else "")
    for outcome in as_batches_finish(futures, groups, described):
        answer.add(outcome)  # scenes never fail a batch: each field lands in result or errors
        met |= {r.field_id for r in outcome.rows} | {s.field_id for s in outcome.skipped}
    if not scenes and params.fields is None:  # an empty answer says why it is empty
        sensors = ", ".join(params.sensors or OPTICAL_SENSORS)
        answer.add_skipped(
            SkippedRow(None, None, f"No scene of {sensors} from {params.date_start} to {params.date_end} meets the AOI")
        )
    for f in fields:
        if f.id is not None and f.id not in met:
            answer.add_skipped(SkippedRow(f.id, None, "No scene of the request's sensors and dates covers this field"))
    get_run_logger().info(
        "%d scenes x %d field(s): %d results, %d left out", len(scenes), len(fields), answer.result_count, answer.error_count
    )
    return answer


def by_interval(params: MtStatsParams, scenes: list, fields: Fields, answer: TimeSeriesAnswer) -> TimeSeriesAnswer:
    """SPEC §6: one step per interval, each compositing its scenes on the common grid."""
    from eotasks.intervals import intervals

    aggregation = params.aggregation
    assert aggregation is not None
    spans = intervals(params.date_start, params.date_end, aggregation.period, aggregation.last_interval)
    sensors = list(params.sensors or OPTICAL_SENSORS)
    grid = composite_grid(params, scenes, sensors, answer.indices, fields) if scenes else None
    futures, groups = [], []
    for first, last in spans:
        members = [s for s in scenes if first <= s.date <= last]
        if grid is None or not members:
            for f in fields:
                ref = IntervalRef.of_interval(first.isoformat(), last.isoformat(), ())
                answer.add_skipped(SkippedRow(f.id, ref, "No scene in the interval"))
            continue
        futures.append(
            interval_stats.submit(
                first.isoformat(),
                last.isoformat(),
                members,
                answer.indices,
                fields,
                grid,
                stats_options(params),
                aggregation.composite,
                params.resample,
            )
        )
        groups.append(members)
    described = f"mt_stats: intervals done of {len(futures)} ({aggregation.period}, {aggregation.composite})"
    for outcome in as_batches_finish(futures, groups, described):
        answer.add(outcome)
    get_run_logger().info(
        "%d intervals, %d with scenes: %d results, %d left out", len(spans), len(futures), answer.result_count, answer.error_count
    )
    return answer


def composite_grid(params: MtStatsParams, scenes: list, sensors: list[str], indices: list[str], fields: Fields) -> Any:
    """The one grid of SPEC §6 (and of SPEC §5 for per-scene statistics): the request's output grid
    when it gives one, what it leaves open (CRS, pixel size) from the native grid of the earliest
    scene of the first sensor; without an output grid, that native grid."""
    from shapely.ops import unary_union

    from eotasks.aggregate import common_grid
    from eotasks.raster.aoi import to_crs
    from eotasks.raster.grid import matching_resolution, output_grid

    if not params.output_requested:
        return common_grid(scenes, sensors, indices, fields)
    region = unary_union([f.shape for f in fields])
    resolution = params.resolution_xy
    sized = resolution is not None or params.width is not None or params.height is not None
    crs = params.output_crs
    if crs is None or not sized:  # the first scene's grid is read only for what the request leaves to it
        common = common_grid(scenes, sensors, indices, fields)
        crs = crs or common.crs
        if not sized:
            resolution = matching_resolution(common.crs, common.resolution[0], common.bounds, crs)
    return output_grid(to_crs(region, crs).bounds, crs, resolution=resolution, width=params.width, height=params.height)


def as_batches_finish(futures: list[PrefectFuture], groups: list[list], description: str) -> Iterator[SceneOutcome]:
    """Each batch's outcome as it finishes, with the run's progress artifact and a log line."""
    logger = get_run_logger()
    total = sum(len(g) for g in groups)
    progress = cast(UUID, create_progress_artifact(0.0, description=description))  # a sync flow: the id, not a coroutine
    sizes = {id(f): len(g) for f, g in zip(futures, groups, strict=False)}
    done = 0
    for future in as_completed(futures):
        yield future.result()
        done += sizes[id(future)]
        update_progress_artifact(progress, 100.0 * done / total)
        logger.info("scenes done: %d/%d", done, total)
    if not total:
        update_progress_artifact(progress, 100.0)
