"""Step ``crop``: windowed reads of the bands needed, over the AOI, on one grid."""

from __future__ import annotations

from prefect import get_run_logger, task

from eotasks.budgets import aoi_of, check_scene_task
from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import UserError
from eotasks.models import AOIParams
from eotasks.raster.crop import Cropped, crop_to_aoi
from tasks._policy import io_step


def crop_scene(scene: SceneRecord, params: AOIParams, band_groups: list[list[str]], task_type: str) -> list[Cropped]:
    """One Cropped per group of bands (each group on its coarsest band's grid); the AOI is resolved
    once, and the task's budget (read windows, jpeg's picture size) checked before the first read."""
    assets = scene_assets(scene)
    missing = [b for group in band_groups for b in group if b not in assets]
    if missing:
        raise UserError(f"Scene {scene.scene_id} has no {', '.join(missing)} band", field="params.bm_type")
    aoi = aoi_of(params)
    check_scene_task(task_type, params, scene, aoi)
    return [crop_to_aoi(assets, group, aoi, params.mask_outside) for group in band_groups]


@task(name="crop", task_run_name="crop", timeout_seconds=900, **io_step())
def crop(scene: SceneRecord, params: AOIParams, band_groups: list[list[str]], task_type: str) -> list[Cropped]:
    cropped = crop_scene(scene, params, band_groups, task_type)
    logger = get_run_logger()
    for group, c in zip(band_groups, cropped):
        logger.info("read %s over %dx%d px at %s m (%d px inside the AOI)",
                    ", ".join(group), c.grid.width, c.grid.height, c.grid.transform.a, int(c.inside.sum()))
    return cropped
