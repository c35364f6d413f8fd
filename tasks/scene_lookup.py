"""Step ``scene_lookup``: the scene a task names, or every scene a time series covers."""

from __future__ import annotations

import datetime as dt

from prefect import get_run_logger, task
from shapely.geometry.base import BaseGeometry

from eotasks.catalog.scenes import get_scene
from eotasks.catalog.search import search_scenes
from eotasks.db import SceneRecord
from eotasks.errors import SceneNotFound
from tasks._policy import io_step


def find_scene(view_id: str) -> SceneRecord:
    record = get_scene(view_id)
    if record is None:
        raise SceneNotFound(view_id)
    return record


def find_scenes(sensors: list[str], start: dt.date, end: dt.date, aoi: BaseGeometry, limit: int) -> list[SceneRecord]:
    """Every scene of ``sensors`` meeting the AOI from ``start`` to ``end`` (inclusive); newest
    first, at most ``limit`` (the most recent scenes win when there are more)."""
    scenes, _ = search_scenes(sensors, [(start, end)], aoi, newest_first=True, limit=limit)
    return scenes


@task(name="scene_lookup", task_run_name="scene_lookup", timeout_seconds=60, **io_step())
def lookup_scene(view_id: str) -> SceneRecord:
    record = find_scene(view_id)
    get_run_logger().info("scene %s (%s, %s), %d assets", record.scene_id, record.sensor, record.date, len(record.assets))
    return record


@task(name="scene_lookup", task_run_name="scene_lookup", timeout_seconds=120, **io_step())
def lookup_scenes(sensors: list[str], start: dt.date, end: dt.date, aoi: BaseGeometry, limit: int) -> list[SceneRecord]:
    scenes = find_scenes(sensors, start, end, aoi, limit)
    get_run_logger().info("%d scenes of %s between %s and %s meet the AOI", len(scenes), ", ".join(sensors), start, end)
    return scenes
