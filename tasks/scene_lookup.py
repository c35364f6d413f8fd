"""Step ``scene_lookup``: find the scene in the catalogue."""

from __future__ import annotations

from prefect import get_run_logger, task

from eotasks.catalog.scenes import get_scene
from eotasks.db import SceneRecord
from eotasks.errors import SceneNotFound
from tasks._policy import io_step


def find_scene(view_id: str) -> SceneRecord:
    record = get_scene(view_id)
    if record is None:
        raise SceneNotFound(view_id)
    return record


@task(name="scene_lookup", task_run_name="scene_lookup", timeout_seconds=60, **io_step())
def scene_lookup(view_id: str) -> SceneRecord:
    record = find_scene(view_id)
    get_run_logger().info("scene %s (%s, %s), %d assets", record.scene_id, record.sensor, record.date, len(record.assets))
    return record
