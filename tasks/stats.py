"""Step ``stats``: crop -> index -> cloud mask -> statistics for a batch of scenes.

Granularity. Prefect charges about 0.07 s of orchestration per task run here, while one scene's
work is 0.01-0.05 s (a 400x400 to 1000x1000 px AOI). One task per scene (or three: crop, index,
stats) would make orchestration the bulk of the run and leave the threads idle behind the GIL.
So the flow hands each task a batch of scenes (a few batches per worker thread, so the threads
stay busy to the end) and the task retries each scene on its own, with backoff, inside the batch:
a slow or broken scene costs its own retries, never the batch's, and lands in ``errors``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from prefect import get_run_logger, task
from shapely.geometry.base import BaseGeometry

from eotasks.db import SceneRecord
from eotasks.timeseries import SceneSkipped, StatsOptions, error_item, scene_statistics
from eotasks.settings import get_settings
from tasks._policy import compute_step


def stats_with_retries(record: SceneRecord, items: list[str], aoi: BaseGeometry, options: StatsOptions,
                       attempts: int, base_delay_s: float = 1.0) -> dict[str, Any]:
    """One scene's item, or its ``errors`` entry: skipped (a reason) or unreadable after ``attempts``."""
    for attempt in range(1, attempts + 1):
        try:
            return scene_statistics(record, items, aoi, options)
        except SceneSkipped as exc:
            return error_item(record, exc.message)
        except Exception as exc:  # I/O: the file may be back, or the network, on the next attempt
            if attempt == attempts:
                # The client gets a sentence; the operator gets the exception (hrefs, bucket paths) in the log.
                _log_warning("scene %s left out after %d attempts: %r", record.view_id, attempts, exc)
                return error_item(record, f"The scene could not be read after {attempts} attempts: {read_error_sentence(exc)}")
            time.sleep(base_delay_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def read_error_sentence(exc: BaseException) -> str:
    """What a client may be told about a failed read: the kind of failure, never paths or hrefs."""
    from rasterio.errors import RasterioIOError

    text = str(exc).lower()
    if isinstance(exc, FileNotFoundError) or "no such file" in text or "does not exist" in text or "404" in text:
        return "one of its band files is missing"
    if isinstance(exc, (RasterioIOError, OSError)) and ("not recognized" in text or "not a" in text or "corrupt" in text or "tiff" in text):
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


def batches(scenes: list[SceneRecord], workers: int, max_batch: int = 16) -> list[list[SceneRecord]]:
    """Round-robin batches: two per worker (so no thread idles at the end), at most ``max_batch`` scenes each."""
    if not scenes:
        return []
    count = min(len(scenes), max(2 * workers, -(-len(scenes) // max_batch)))
    return [scenes[i::count] for i in range(count)]


@task(name="stats", task_run_name="stats-{label}", **compute_step())
def scene_batch_stats(records: list[SceneRecord], items: list[str], aoi: BaseGeometry, options: StatsOptions, label: str) -> list[dict[str, Any]]:
    attempts = get_settings().io_retries + 1
    out = [stats_with_retries(r, items, aoi, options, attempts) for r in records]
    bad = [o for o in out if o.get("status") is False]
    if bad:
        get_run_logger().warning("%d of %d scenes left out: %s", len(bad), len(records), "; ".join(f"{b['view_id']}: {b['error']}" for b in bad))
    return out


def fields_with_retries(record: SceneRecord, items: list[str], fields: list, options: Any, attempts: int,
                        base_delay_s: float = 1.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One scene's items for all its fields, or an error per field it meets after ``attempts``."""
    from shapely.geometry import shape as _shape

    from eotasks.errors import UserError
    from eotasks.fields import scene_fields_statistics

    for attempt in range(1, attempts + 1):
        try:
            return scene_fields_statistics(record, items, fields, options)
        except UserError as exc:
            reason = exc.message
            break
        except Exception as exc:  # I/O: the file may be back, or the network, on the next attempt
            if attempt == attempts:
                _log_warning("scene %s left out after %d attempts: %r", record.view_id, attempts, exc)
                reason = f"The scene could not be read after {attempts} attempts: {read_error_sentence(exc)}"
                break
            time.sleep(base_delay_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    footprint = _shape(record.footprint)
    base = {"status": False, "date": record.date.isoformat(), "scene_id": record.scene_id, "view_id": record.view_id, "error": reason}
    return [], [{"field_id": fid, **base} for fid, geom in fields if footprint.intersects(geom)]


@task(name="stats", task_run_name="stats-{label}", **compute_step())
def scene_batch_fields(records: list[SceneRecord], items: list[str], fields: list, options: Any, label: str) -> tuple[list, list]:
    """A batch of scenes, each read once for every field it meets."""
    attempts = get_settings().io_retries + 1
    results, errors = [], []
    for record in records:
        r, e = fields_with_retries(record, items, fields, options, attempts)
        results += r
        errors += e
    return results, errors
