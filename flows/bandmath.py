"""Download Indices (``bandmath``): one Float32 COG band per expression over the AOI.

authentication -> scene_lookup -> crop -> index -> publish
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from eotasks.raster.bandmath import NODATA
from eotasks.raster.cog import cog_bytes
from eotasks.raster.indices import bands_of, compile_expressions
from eotasks.models import BandmathParams
from eotasks.sensors import SENSORS
from eotasks.settings import get_settings
from flows._common import fail, run_options, safe_name
from tasks.authentication import authenticate
from tasks.crop import crop
from tasks.index import index
from tasks.publish import publish
from tasks.scene_lookup import scene_lookup


@flow(name="bandmath", persist_result=True, result_serializer="json", log_prints=True, **run_options())
def bandmath(task_id: str, api_key_id: int, params: BandmathParams) -> Any:
    try:
        authenticate(api_key_id)
        scene = scene_lookup(params.view_id)
        programs = compile_expressions(params.bm_type, SENSORS[scene.sensor], get_settings().max_expression_chars)
        [cropped] = crop(scene, params, [bands_of(programs)], "bandmath")
        image = index(programs, cropped)
        name = f"{scene.scene_id}_{safe_name(params.name_alias or params.bm_type)}.TIF"
        data = cog_bytes(image, cropped.grid.crs, cropped.grid.transform, NODATA, [p.source for p in programs])
        files = publish(task_id, {name: data})
        return {"files": files}
    except Exception as exc:
        return fail(exc)
