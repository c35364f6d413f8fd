"""Step ``crop``: windowed reads of the bands needed, over the AOI, on one grid."""

from __future__ import annotations

from prefect import get_run_logger, task
from shapely.geometry import shape

from eotasks.catalog.scenes import scene_assets
from eotasks.db import CropperRecord, SceneRecord, session
from eotasks.errors import UserError
from eotasks.models import AOIParams
from eotasks.raster.crop import Cropped, crop_to_aoi
from tasks._policy import io_step


def resolve_aoi(params: AOIParams):
    """The AOI in lon/lat, resolving a cropper_ref from the database; None for the whole scene."""
    if params.cropper_ref is not None:
        with session() as s:
            record = s.get(CropperRecord, params.cropper_ref)
        if record is None:
            raise UserError(f"Unknown cropper_ref {params.cropper_ref}", field="params.cropper_ref")
        return shape(record.geometry)
    return params.aoi_shape()


def crop_scene(scene: SceneRecord, params: AOIParams, band_groups: list[list[str]]) -> list[Cropped]:
    """One Cropped per group of bands (each group on its coarsest band's grid); the AOI is resolved once."""
    assets = scene_assets(scene)
    missing = [b for group in band_groups for b in group if b not in assets]
    if missing:
        raise UserError(f"Scene {scene.scene_id} has no {', '.join(missing)} band", field="params.bm_type")
    aoi = resolve_aoi(params)
    return [crop_to_aoi(assets, group, aoi, params.mask_outside) for group in band_groups]


@task(name="crop", task_run_name="crop", timeout_seconds=900, **io_step())
def crop(scene: SceneRecord, params: AOIParams, band_groups: list[list[str]]) -> list[Cropped]:
    cropped = crop_scene(scene, params, band_groups)
    logger = get_run_logger()
    for group, c in zip(band_groups, cropped):
        logger.info("read %s over %dx%d px at %s m (%d px inside the AOI)",
                    ", ".join(group), c.grid.width, c.grid.height, c.grid.transform.a, int(c.inside.sum()))
    return cropped
