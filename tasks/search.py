"""Step ``scene_lookup`` for time series: every scene of the sensors meeting the AOI in the dates."""

from __future__ import annotations

from prefect import get_run_logger, task
from shapely.geometry.base import BaseGeometry

from eotasks.catalog.search import search_scenes
from eotasks.db import SceneRecord
from eotasks.models import MtStatsParams
from eotasks.sensors import OPTICAL_SENSORS
from tasks._policy import io_step


def find_scenes(params: MtStatsParams, aoi: BaseGeometry) -> list[SceneRecord]:
    """Newest first, at most ``limit``: the most recent scenes win when there are more."""
    scenes, found = search_scenes(list(params.sensors or OPTICAL_SENSORS), [(params.date_start, params.date_end)], aoi,
                                  newest_first=True, limit=params.limit)
    return scenes


@task(name="scene_lookup", task_run_name="scene_lookup", timeout_seconds=120, **io_step())
def scene_search(params: MtStatsParams, aoi: BaseGeometry) -> list[SceneRecord]:
    scenes = find_scenes(params, aoi)
    get_run_logger().info("%d scenes of %s between %s and %s meet the AOI", len(scenes),
                          ", ".join(params.sensors or OPTICAL_SENSORS), params.date_start, params.date_end)
    return scenes
