"""A task's resource budget, from its parameters and the catalogue, before anything is read.

Used by the gateway at submission (over budget is a 400 naming the field and the limit) and by the
flows' first steps (a run created some other way, or a catalogue that changed, is refused before its
first read). The counting itself is plain raster code (``eotasks.raster.budget``).
"""

from __future__ import annotations

from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eotasks.errors import UserError
from eotasks.raster.budget import check_read_budget, read_pixels
from eotasks.settings import get_settings


def aoi_of(params: Any) -> BaseGeometry | None:
    """The AOI in lon/lat, a cropper_ref resolved from the database; None for the whole scene."""
    ref = getattr(params, "cropper_ref", None)
    if ref is not None:
        from eotasks.db import CropperRecord, session

        with session() as s:
            record = s.get(CropperRecord, ref)
        if record is None:
            raise UserError(f"Unknown cropper_ref {ref}", field="params.cropper_ref")
        return shape(record.geometry)
    return params.aoi_shape()


def _aoi_field(params: Any) -> str:
    for name in ("geometry", "bbox", "cropper_ref"):
        if getattr(params, name, None) is not None:
            return f"params.{name}"
    return "params.view_id"  # no AOI: the whole scene


def scene_task_bands(task_type: str, params: Any, sensor: Any) -> list[str]:
    from eotasks.raster.indices import bands_of, compile_expressions

    if task_type == "lbe":
        return [sensor.resolve_band(b) or b for b in params.bands]
    return bands_of(compile_expressions(params.bm_type, sensor, get_settings().max_expression_chars))


def check_scene_task(task_type: str, params: Any, scene: Any, aoi: BaseGeometry | None) -> None:
    """bandmath, lbe, jpeg: the read window over the AOI's bounds (the output covers them) x bands,
    and for jpeg the picture's size, before any read."""
    from eotasks.sensors import SENSORS

    settings = get_settings()
    sensor = SENSORS[scene.sensor]
    bands = [b for b in scene_task_bands(task_type, params, sensor) if b in scene.assets]
    resolutions = [float(scene.assets[b]["resolution"]) for b in bands]
    pixels = read_pixels(scene.crs, scene.footprint, resolutions, aoi, per_part=False)
    check_read_budget(pixels, settings.max_read_pixels, _aoi_field(params))
    if task_type == "jpeg":
        from eotasks.raster.warp import aoi_pixels

        px = params.px_size or max(resolutions, default=10.0)
        area = aoi if aoi is not None else shape(scene.footprint)
        n = aoi_pixels(area, px)
        if n > settings.max_output_pixels:
            raise UserError(f"px_size {px} m gives a picture of {n:,} pixels for this AOI, more than the limit of "
                            f"{settings.max_output_pixels:,}; use a larger px_size", field="params.px_size")


def check_time_series_task(params: Any, aoi: BaseGeometry) -> None:
    """mt_stats: per scene, each AOI part's window x the bands of its indices and mask, at the
    sensor's own resolutions (in the part's UTM zone; the scenes are not known yet)."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    from eotasks.raster.indices import bands_of, compile_expressions
    from eotasks.sensors import OPTICAL_SENSORS, sensor_by_name

    settings = get_settings()
    items = [params.bm_type] if isinstance(params.bm_type, str) else list(params.bm_type)
    minx, miny, maxx, maxy = aoi.bounds
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(minx, miny, maxx, maxy))
    crs = f"EPSG:{infos[0].code}" if infos else "EPSG:3857"
    footprint = {"type": "Polygon", "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]]}
    worst = 0
    for name in params.sensors or OPTICAL_SENSORS:
        sensor = sensor_by_name(name)
        if sensor is None:
            continue
        bands: list[str] = []
        for item in items:
            try:
                bands += bands_of(compile_expressions(item, sensor, settings.max_expression_chars, 1))
            except Exception:
                continue  # this sensor cannot compute it: its scenes will not be read for it
        if sensor.mask_band:
            bands.append(sensor.mask_band)
        resolutions = [sensor.band(b).resolution for b in dict.fromkeys(bands)]
        worst = max(worst, read_pixels(crs, footprint, resolutions, aoi, per_part=True))
    check_read_budget(worst, settings.max_read_pixels, _aoi_field(params))
