"""Step ``package`` (stage ``publish``): raw bands of ``lbe`` packed as jp2, GeoTIFF or zip."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import UserError
from eotasks.models import LbeParams
from eotasks.raster.image import Raster
from eotasks.raster.package import BandGroup, package
from eotasks.sensors import SENSORS
from tasks._policy import compute_step
from tasks.encode import scratch_dir


def metadata_files(scene: SceneRecord, names: list[str] | None) -> dict[str, bytes]:
    if not names:
        return {}
    available = scene.metadata_files or {}
    missing = [n for n in names if n not in available]
    if missing:
        listed = ", ".join(sorted(available)) or "none"
        raise UserError(
            f"Scene {scene.scene_id} has no metadata file {', '.join(missing)} (available: {listed})", field="params.metadata"
        )
    return {n: Path(available[n]).read_bytes() for n in names}


@task(name="package", task_run_name="publish", timeout_seconds=900, **compute_step())
def package_bands(scene: SceneRecord, params: LbeParams, groups: list[tuple[BandGroup, Raster]]) -> tuple[str, Path]:
    assets = scene_assets(scene)
    nodata = {b: assets[b].fill for g, _ in groups for b in g.bands}
    name, path = package(
        scene.scene_id, SENSORS[scene.sensor].family, groups, nodata, metadata_files(scene, params.metadata), scratch_dir()
    )
    get_run_logger().info("packaged %s (%d bytes)", name, path.stat().st_size)
    return name, path
