"""Step ``crop``: windowed reads of the bands needed, over the AOI, on one grid per group of bands."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_run_logger, task
from shapely.geometry.base import BaseGeometry

from eotasks.budget import aoi_of, check_scene_task, output_grid_of
from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import UserError
from eotasks.models import AOIParams
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster
from eotasks.raster.read import read_aoi, read_for_grid
from tasks._policy import io_step


@dataclass
class Crop:
    """What the reads gave: one Raster per group of bands, and the AOI they were cut by (lon/lat;
    None for the whole scene), which later steps mask their own grids by; with an output grid
    (SPEC §5), that grid, which the rasters (native, unmasked, covering it) are to be warped onto."""

    rasters: list[Raster]
    aoi: BaseGeometry | None
    output: Grid | None = None


def crop_scene(scene: SceneRecord, params: AOIParams, band_groups: list[list[str]], task_type: str, scaled: bool = True) -> Crop:
    """One Raster per group of bands (each group on its coarsest band's grid); the AOI is resolved
    once, and the task's budget (read windows, outputs, memory) checked before the first read."""
    assets = scene_assets(scene)
    missing = [b for group in band_groups for b in group if b not in assets]
    if missing:
        raise UserError(f"Scene {scene.scene_id} has no {', '.join(missing)} band", field="params.bm_type")
    aoi = aoi_of(params)
    check_scene_task(task_type, params, scene, aoi)
    output = output_grid_of(task_type, params, scene, aoi)
    if output is not None:
        return Crop([read_for_grid(assets, group, output, scaled) for group in band_groups], aoi, output)
    return Crop([read_aoi(assets, group, aoi, params.mask_outside, scaled) for group in band_groups], aoi)


@task(name="crop", task_run_name="crop", timeout_seconds=900, **io_step())
def crop(scene: SceneRecord, params: AOIParams, band_groups: list[list[str]], task_type: str, scaled: bool = True) -> Crop:
    out = crop_scene(scene, params, band_groups, task_type, scaled)
    logger = get_run_logger()
    for group, raster in zip(band_groups, out.rasters, strict=False):
        logger.info(
            "read %s over %dx%d px at %s m (%d px with data)",
            ", ".join(group),
            raster.grid.width,
            raster.grid.height,
            raster.grid.transform.a,
            int(raster.valid[0].sum()),
        )
    return out
