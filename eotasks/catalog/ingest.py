"""Fill the catalogue from a folder of band files of one real scene (``B04.tif``, ``*_B4.TIF``, ...)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import rasterio

from eotasks.catalog.ids import parse_view_id
from eotasks.catalog.scenes import asset_spec, upsert_scene
from eotasks.db import SceneRecord
from eotasks.raster.aoi import footprint_geojson
from eotasks.sensors import Sensor, sensor_by_name

_BAND_FILE = re.compile(r"(?:^|[_.-])(?P<band>SR_B\d{1,2}|ST_B\d{1,2}|B\d{1,2}A?|SCL|QA_PIXEL|BQA)\.(?:tif|tiff|jp2)$", re.I)
_METADATA_FILE = re.compile(r"(MTL\.txt|MTL\.json|metadata\.xml|tileInfo\.json|productInfo\.json|MTD_\w+\.xml)$", re.I)


def band_files(folder: Path, sensor: Sensor) -> dict[str, Path]:
    """Our band name -> file, for every file in ``folder`` that names a band of ``sensor``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        m = _BAND_FILE.search(path.name)
        if not m:
            continue
        band = sensor.resolve_band(m["band"])
        if band is not None:
            found[band] = path
    return found


def ingest_folder(
    folder: str | Path,
    sensor_name: str,
    date: dt.date | None = None,
    view_id: str | None = None,
    platform: str | None = None,
    cloud_cover: float = 0.0,
    scale: float | None = None,
    offset: float | None = None,
    url: str | None = None,
) -> SceneRecord:
    folder = Path(folder).resolve()
    sensor = sensor_by_name(sensor_name)
    if sensor is None:
        raise ValueError(f"unknown sensor {sensor_name!r}")
    if view_id is None:
        raise ValueError("a view_id is needed: the files do not carry one (e.g. S2/18/S/VG/2020/6/15/0)")
    scene = parse_view_id(view_id)
    if scene.sensor.name != sensor.name:
        raise ValueError(f"view_id {view_id} is a {scene.sensor.name} scene, not {sensor.name}")
    if date is not None and date != scene.date:
        raise ValueError(f"date {date} does not match the view_id's date {scene.date}")
    files = band_files(folder, sensor)
    if not files:
        raise ValueError(f"no band files of {sensor.name} in {folder}")
    assets = {}
    crs = None
    bounds = None
    for band, path in files.items():
        info = sensor.band(band)
        with rasterio.open(path) as src:
            if crs is None:
                crs, bounds = src.crs.to_string(), tuple(src.bounds)
            elif src.crs.to_string() != crs:
                raise ValueError(f"{path.name} is in {src.crs}, the other bands in {crs}")
            resolution = abs(src.transform.a)
            nodata = src.nodata if src.nodata is not None else sensor.default_nodata
        assets[band] = asset_spec(
            str(path), resolution,
            scale if scale is not None else sensor.default_scale,
            offset if offset is not None else sensor.default_offset,
            nodata, info.spectral,
        )
    footprint = footprint_geojson(bounds, crs)
    xs = [p[0] for p in footprint["coordinates"][0]]
    ys = [p[1] for p in footprint["coordinates"][0]]
    metadata = {p.name: str(p) for p in sorted(folder.iterdir()) if _METADATA_FILE.search(p.name)}
    record = SceneRecord(
        view_id=scene.view_id, scene_id=scene.scene_id(platform), sensor=sensor.name, date=scene.date,
        cloud_cover=cloud_cover, crs=crs, footprint=footprint, west=min(xs), south=min(ys), east=max(xs),
        north=max(ys), assets=assets, mask_band=sensor.mask_band if sensor.mask_band in assets else None,
        metadata_files=metadata,
    )
    return upsert_scene(record, url)
