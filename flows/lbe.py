"""Download Analytic (``lbe``): raw bands over the AOI at native resolution.

authentication -> scene_lookup -> crop (every resolution group, the AOI resolved once)
-> [warp, with an output grid] -> publish (package, store)
"""

from __future__ import annotations

from typing import Any

from eotasks.catalog.scenes import scene_assets
from eotasks.models import LbeParams
from eotasks.raster.package import plan_groups
from flows._common import task_flow
from tasks.artifacts import file_artifacts
from tasks.authentication import authenticate
from tasks.crop import crop
from tasks.package import package_bands
from tasks.publish import publish
from tasks.scene_lookup import lookup_scene
from tasks.warp import warp


@task_flow("lbe")
def lbe(task_id: str, api_key_id: int, params: LbeParams) -> Any:
    authenticate(api_key_id)
    scene = lookup_scene(params.view_id)
    assets = scene_assets(scene)  # a band the scene lacks is refused by crop, by name
    # With an output grid (SPEC §5) every band lands on it: one resolution, so merge puts them together.
    same = 1.0 if params.output_requested else None
    groups = plan_groups(
        params.bands,
        {b: same or (assets[b].resolution if b in assets else 0.0) for b in params.bands},
        params.merge,
        {b: assets[b].fill if b in assets else 0.0 for b in params.bands},
    )
    cut = crop(scene, params, [list(g.bands) for g in groups], "lbe", scaled=False)
    rasters = cut.rasters
    if cut.output is not None:
        rasters = [warp(r, cut.output, params.resample, cut.aoi, params.mask_outside, stored=True) for r in rasters]
    name, path = package_bands(scene, params, list(zip(groups, rasters, strict=False)))
    files = publish(task_id, {name: path})
    file_artifacts(task_id, files)
    return {"files": files}
