"""Download Visual (``jpeg``): a grey, colormapped or RGB picture in EPSG:3857.

authentication -> scene_lookup -> crop -> index -> render -> publish
"""

from __future__ import annotations

from typing import Any

from eotasks.models import JpegParams
from eotasks.raster.indices import bands_of
from flows._common import output_name, programs_for, task_flow
from tasks.artifacts import file_artifacts
from tasks.authentication import authenticate
from tasks.crop import crop
from tasks.index import index
from tasks.publish import publish
from tasks.render import render
from tasks.scene_lookup import lookup_scene

EXTENSIONS = {"jpeg": "jpg", "png": "png", "tiff": "tif"}


@task_flow("jpeg")
def jpeg(task_id: str, api_key_id: int, params: JpegParams) -> Any:
    authenticate(api_key_id)
    scene = lookup_scene(params.view_id)
    programs = programs_for(scene, params.bm_type)
    cut = crop(scene, params, [bands_of(programs)], "jpeg")
    values = index(programs, cut.rasters[0])
    picture = render(values, cut.aoi, params, cut.output)
    files = publish(task_id, {output_name(scene, params, EXTENSIONS[params.format]): picture})
    file_artifacts(task_id, files)
    return {"files": files}
