"""Download Indices (``bandmath``): one Float32 COG band per expression over the AOI.

authentication -> scene_lookup -> crop -> index -> [warp, with an output grid]
-> publish (encode the COG, store it; the file's artifacts)
"""

from __future__ import annotations

from typing import Any

from eotasks.models import BandmathParams
from eotasks.raster.indices import bands_of
from flows._common import output_name, programs_for, task_flow
from tasks.artifacts import file_artifacts
from tasks.authentication import authenticate
from tasks.crop import crop
from tasks.encode import FloatCog
from tasks.index import index
from tasks.publish import publish
from tasks.scene_lookup import lookup_scene
from tasks.warp import warp


@task_flow("bandmath")
def bandmath(task_id: str, api_key_id: int, params: BandmathParams) -> Any:
    authenticate(api_key_id)
    scene = lookup_scene(params.view_id)
    programs = programs_for(scene, params.bm_type)
    cut = crop(scene, params, [bands_of(programs)], "bandmath")
    indices = index(programs, cut.rasters[0])
    if cut.output is not None:  # SPEC §5: computed on the native grid, then warped, then the AOI
        indices = warp(indices, cut.output, params.resample, cut.aoi, params.mask_outside)
    name = output_name(scene, params, "TIF")
    files = publish(task_id, {name: FloatCog(indices)})
    file_artifacts(task_id, files)
    return {"files": files}
