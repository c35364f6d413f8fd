"""Download Analytic (``lbe``): raw bands over the AOI at native resolution.

authentication -> scene_lookup -> crop (every resolution group, the AOI resolved once) -> package -> publish
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from eotasks.models import LbeParams
from eotasks.raster.package import plan_groups
from flows._common import fail, run_options
from tasks.authentication import authenticate
from tasks.crop import crop
from tasks.package import package_bands
from tasks.publish import publish
from tasks.scene_lookup import scene_lookup


@flow(name="lbe", persist_result=True, result_serializer="json", **run_options())
def lbe(task_id: str, api_key_id: int, params: LbeParams) -> Any:
    try:
        authenticate(api_key_id)
        scene = scene_lookup(params.view_id)
        resolutions = {b: scene.assets[b]["resolution"] for b in params.bands if b in scene.assets}
        nodata = {b: (scene.assets[b].get("nodata") if scene.assets[b].get("nodata") is not None else 0) for b in params.bands if b in scene.assets}
        groups = plan_groups(params.bands, {b: resolutions.get(b, 0.0) for b in params.bands}, params.merge, nodata)
        cropped = list(zip(groups, crop(scene, params, [list(g.bands) for g in groups], "lbe")))
        name, data = package_bands(scene, params, cropped)
        return {"files": publish(task_id, {name: data})}
    except Exception as exc:
        return fail(exc)
