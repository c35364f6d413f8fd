"""Download Indices (``bandmath``): one Float32 COG band per expression over the AOI.

authentication -> scene_lookup -> crop -> index -> publish (encode the COG, store it; the file's artifacts)
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


@task_flow("bandmath")
def bandmath(task_id: str, api_key_id: int, params: BandmathParams) -> Any:
    authenticate(api_key_id)
    scene = lookup_scene(params.view_id)
    programs = programs_for(scene, params.bm_type)
    [bands] = crop(scene, params, [bands_of(programs)], "bandmath").rasters
    indices = index(programs, bands)
    name = output_name(scene, params, "TIF")
    files = publish(task_id, {name: FloatCog(indices)})
    file_artifacts(task_id, files)
    return {"files": files}
