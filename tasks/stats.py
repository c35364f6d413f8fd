"""Step ``stats``: a batch of scenes, each read once for every field (or the single AOI) it meets.

Granularity. Prefect's orchestration of a task run costs more than one scene's work on a small
AOI, so one task per scene would make orchestration the bulk of the run and leave the threads
idle. The flow hands each task a batch of scenes (a few batches per worker thread, so the threads
stay busy to the end) and the task retries each scene on its own, with backoff, inside the batch:
a slow or broken scene costs its own retries, never the batch's, and lands in ``errors``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefect import get_run_logger, task
from shapely.geometry import shape

from eotasks.aggregate import scene_statistics_on_grid
from eotasks.db import SceneRecord
from eotasks.errors import UserError
from eotasks.raster.grid import Grid
from eotasks.settings import get_settings
from eotasks.timeseries import Field, Fields, IntervalRef, SceneOutcome, SceneRef, SkippedRow, StatsOptions, scene_statistics
from tasks._policy import compute_step

T = TypeVar("T")


def with_retries(work: Callable[[], T], attempts: int, base_delay_s: float = 1.0) -> T:
    """``work()``, tried up to ``attempts`` times with jittered exponential backoff; a UserError (the
    client's, or a reason to skip) is not retried."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except UserError:
            raise
        except Exception:  # I/O: the file may be back, or the network, on the next attempt
            if attempt == attempts:
                raise
            time.sleep(base_delay_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def read_error_sentence(exc: BaseException) -> str:
    """What a client may be told about a failed read: the kind of failure, never paths or hrefs."""
    from rasterio.errors import RasterioIOError

    text = str(exc).lower()
    if isinstance(exc, FileNotFoundError) or "no such file" in text or "does not exist" in text or "404" in text:
        return "one of its band files is missing"
    if isinstance(exc, (RasterioIOError, OSError)) and (
        "not recognized" in text or "not a" in text or "corrupt" in text or "tiff" in text
    ):
        return "one of its band files is corrupt"
    if isinstance(exc, (RasterioIOError, OSError, TimeoutError)):
        return "one of its band files could not be reached"
    return "an internal error occurred while reading it"


def _log_warning(message: str, *args: Any) -> None:
    try:
        get_run_logger().warning(message, *args)
    except Exception:  # outside a run (plain calls in tests): the module logger
        import logging

        logging.getLogger("eotasks.stats").warning(message, *args)


def statistics_of_scene(
    record: SceneRecord,
    indices: Sequence[str],
    fields: Sequence[Field],
    options: StatsOptions,
    attempts: int,
    grid: Grid | None = None,
    resample: str = "nearest",
) -> SceneOutcome:
    """One scene's outcome for all its fields: statistics (on its native grid, or on the output
    ``grid`` of SPEC §5), or every field it meets left out with the reason (skipped, or unreadable
    after ``attempts``)."""

    def work() -> SceneOutcome:
        if grid is None:
            return scene_statistics(record, indices, fields, options)
        return scene_statistics_on_grid(record, indices, fields, grid, options, resample)

    try:
        return with_retries(work, attempts)
    except UserError as exc:
        reason = exc.message
    except Exception as exc:
        # The client gets a sentence; the operator gets the exception (hrefs, bucket paths) in the log.
        _log_warning("scene %s left out after %d attempts: %r", record.view_id, attempts, exc)
        reason = f"The scene could not be read after {attempts} attempts: {read_error_sentence(exc)}"
    footprint = shape(record.footprint)
    ref = SceneRef.of(record)
    return SceneOutcome(skipped=[SkippedRow(f.id, ref, reason) for f in fields if f.id is None or footprint.intersects(f.shape)])


def batches(scenes: list[SceneRecord], workers: int, max_batch: int = 16) -> list[list[SceneRecord]]:
    """Round-robin batches: two per worker (so no thread idles at the end), at most ``max_batch`` scenes each."""
    if not scenes:
        return []
    count = min(len(scenes), max(2 * workers, -(-len(scenes) // max_batch)))
    return [scenes[i::count] for i in range(count)]


@task(name="stats", task_run_name="stats-{label}", **compute_step())
def stats(
    records: list[SceneRecord],
    indices: list[str],
    fields: Fields,
    options: StatsOptions,
    label: str,
    grid: Grid | None = None,
    resample: str = "nearest",
) -> SceneOutcome:
    attempts = get_settings().io_retries + 1
    out = SceneOutcome()
    for record in records:
        one = statistics_of_scene(record, indices, fields, options, attempts, grid, resample)
        out.rows += one.rows
        out.skipped += one.skipped
    if out.skipped:
        get_run_logger().info("%d field-scene(s) of %d scene(s) left out", len(out.skipped), len(records))
    return out


@task(name="stats", task_run_name="stats-{first}", **compute_step())
def interval_stats(
    first: str,
    last: str,
    records: list[SceneRecord],
    indices: list[str],
    fields: Fields,
    grid: Grid,
    options: StatsOptions,
    composite: str,
    resample: str,
) -> SceneOutcome:
    """SPEC §6: one interval's composite and its statistics (a step per interval in the UI)."""
    from eotasks.aggregate import interval_statistics

    attempts = get_settings().io_retries + 1
    try:
        out = with_retries(
            lambda: interval_statistics(first, last, records, indices, fields, grid, options, composite, resample), attempts
        )
    except Exception as exc:
        _log_warning("interval %s..%s left out after %d attempts: %r", first, last, attempts, exc)
        reason = f"The interval could not be composited after {attempts} attempts: {read_error_sentence(exc)}"
        ref = IntervalRef.of_interval(first, last, [r.scene_id for r in records])
        return SceneOutcome(skipped=[SkippedRow(f.id, ref, reason) for f in fields])
    get_run_logger().info("%s..%s: %d scene(s) composited (%s), %d item(s)", first, last, len(records), composite, len(out.rows))
    return out
