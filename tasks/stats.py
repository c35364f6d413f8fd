"""Step ``stats``: one scene's crop -> index -> cloud mask -> statistics, as one retryable task.

One task per scene, not one per crop/index/stats: Prefect's orchestration costs about 0.07 s per
task run here, more than a scene's compute (about 0.05 s for a 1000x1000 AOI), so three tasks per
scene would triple the overhead while buying nothing: the three parts always run together and a
retry must redo the read anyway. Each scene still retries on its own and fails on its own.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from shapely.geometry.base import BaseGeometry

from eotasks.db import SceneRecord
from eotasks.raster.timeseries import SceneSkipped, StatsOptions, error_item, scene_statistics
from tasks._policy import io_step


@task(name="stats", task_run_name="stats-{record.view_id}", timeout_seconds=600, **io_step())
def scene_stats(record: SceneRecord, items: list[str], aoi: BaseGeometry, options: StatsOptions) -> dict[str, Any]:
    try:
        return scene_statistics(record, items, aoi, options)
    except SceneSkipped as exc:
        return error_item(record, exc.message)
