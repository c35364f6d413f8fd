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


def crop_scene(scene: SceneRecord, params: AOIParams, bands: list[str]) -> Cropped:
    assets = scene_assets(scene)
    missing = [b for b in bands if b not in assets]
    if missing:
        raise UserError(f"Scene {scene.scene_id} has no {', '.join(missing)} band", field="params.bm_type")
    return crop_to_aoi(assets, bands, resolve_aoi(params), params.mask_outside)


@task(name="crop", task_run_name="crop", timeout_seconds=900, **io_step())
def crop(scene: SceneRecord, params: AOIParams, bands: list[str]) -> Cropped:
    cropped = crop_scene(scene, params, bands)
    get_run_logger().info(
        "read %s over %dx%d px at %s m (%d px inside the AOI)",
        ", ".join(bands), cropped.grid.width, cropped.grid.height, cropped.grid.transform.a, int(cropped.inside.sum()),
    )
    return cropped
