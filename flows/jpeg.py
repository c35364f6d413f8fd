"""Download Visual (``jpeg``): a grey, colormapped or RGB picture in EPSG:3857.

authentication -> scene_lookup -> crop -> index -> render -> publish
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from eotasks.models import JpegParams
from eotasks.raster.indices import bands_of, compile_expressions
from eotasks.sensors import SENSORS
from eotasks.settings import get_settings
from flows._common import fail, run_options, safe_name
from tasks.authentication import authenticate
from tasks.crop import crop
from tasks.index import index
from tasks.publish import publish
from tasks.render import render
from tasks.scene_lookup import scene_lookup

EXTENSIONS = {"jpeg": "jpg", "png": "png", "tiff": "tif"}


@flow(name="jpeg", persist_result=True, result_serializer="json", **run_options())
def jpeg(task_id: str, api_key_id: int, params: JpegParams) -> Any:
    try:
        authenticate(api_key_id)
        scene = scene_lookup(params.view_id)
        programs = compile_expressions(params.bm_type, SENSORS[scene.sensor], get_settings().max_expression_chars)
        [cropped] = crop(scene, params, [bands_of(programs)], "jpeg")
        values = index(programs, cropped)
        picture = render(values, cropped.grid, cropped.aoi, params)
        name = f"{scene.scene_id}_{safe_name(params.name_alias or params.bm_type)}.{EXTENSIONS[params.format]}"
        return {"files": publish(task_id, {name: picture})}
    except Exception as exc:
        return fail(exc)
