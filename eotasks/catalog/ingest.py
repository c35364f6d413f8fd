"""Fill the catalogue from a folder of band files of one real scene (``B04.tif``, ``*_B4.TIF``, ...)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import rasterio

from eotasks.catalog.ids import parse_view_id, s2_view_id
from eotasks.catalog.scaling import BandScaling, landsat_default, landsat_from_mtl, s2_from_mtd, s2_offset
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


_S2_NAME = re.compile(r"T(?P<tile>\d{2}[C-HJ-NP-X][A-Z]{2})_(?P<date>\d{8})T\d{6}")
_LANDSAT_NAME = re.compile(
    r"(L[COTEM]0[89]_L[12][A-Z]{2}_\d{6}_\d{8}_\d{8}_0[12]_(?:T1|T2|RT)|L[COTEM][89]\d{6}\d{7}[A-Z]{3}\d{2})"
)


def view_id_from_names(folder: Path, sensor: Sensor, date: dt.date | None) -> str | None:
    """The view_id when the file names carry it (Landsat product ids, Sentinel-2 T<tile>_<date>T...)."""
    names = " ".join(p.name for p in folder.iterdir())
    if sensor.family == "landsat":
        m = _LANDSAT_NAME.search(names)
        return f"{sensor.short}/{m.group(1)}" if m else None
    m = _S2_NAME.search(names)
    if m:
        return s2_view_id(
            m["tile"],
            dt.date(int(m["date"][:4]), int(m["date"][4:6]), int(m["date"][6:])),
            level="L1C" if sensor.name == "sentinel2" else "L2A",
        )
    return None


def folder_scaling(folder: Path, sensor: Sensor, scene, files: dict[str, Path]) -> dict[str, BandScaling]:
    """Band -> scaling from the folder's own metadata file, else the documented defaults."""
    metadata = {p.name.upper(): p for p in folder.iterdir()}
    if sensor.family == "sentinel2":
        mtd = next((p for n, p in metadata.items() if n in ("MTD_MSIL2A.XML", "MTD_MSIL1C.XML")), None)
        if mtd is not None:
            return s2_from_mtd(mtd.read_text())[1]
        return {b: BandScaling(1e-4, s2_offset(scene.date)) for b in files}
    mtl = next((p for n, p in metadata.items() if n.endswith(("_MTL.TXT", "_MTL.JSON"))), None)
    text = mtl.read_text() if mtl is not None else None
    product_level = "L2" if re.search(r"_L2S[PR]_", scene.product_id or "") else "L1"
    out: dict[str, BandScaling] = {}
    for band, path in files.items():
        # A Level-2 file says so in its name (SR_B4, ST_B10); its factors are the Level-2 groups'.
        level = "L2" if re.search(r"(?:^|_)(?:SR|ST)_B\d", path.name.upper()) else product_level
        from_mtl = landsat_from_mtl(text, level) if text is not None else {}
        out[band] = from_mtl.get(band) or landsat_default(band, level, scene.collection, path.name)
    return out


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
        view_id = view_id_from_names(folder, sensor, date)
    if view_id is None:
        raise ValueError("the file names do not carry the scene's id: pass --view-id (e.g. S2/18/S/VG/2020/6/15/0)")
    scene = parse_view_id(view_id)
    if scene.sensor.name != sensor.name:
        raise ValueError(f"view_id {view_id} is a {scene.sensor.name} scene, not {sensor.name}")
    if date is not None and date != scene.date:
        raise ValueError(f"date {date} does not match the view_id's date {scene.date}")
    files = band_files(folder, sensor)
    if not files:
        raise ValueError(f"no band files of {sensor.name} in {folder}")
    scaling = folder_scaling(folder, sensor, scene, files)
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
        own = scaling.get(band) if info.spectral else None
        assets[band] = asset_spec(
            str(path),
            resolution,
            scale if scale is not None else (own.scale if own else 1.0),
            offset if offset is not None else (own.offset if own else 0.0),
            nodata,
            info.spectral,
            own.unit if own else None,
            own.extra if own else None,
        )
    metadata = {p.name: str(p) for p in sorted(folder.iterdir()) if _METADATA_FILE.search(p.name)}
    if crs is None or bounds is None:  # there was at least one band file
        raise ValueError(f"no band files of {sensor.name} in {folder}")
    record = SceneRecord(
        view_id=scene.view_id,
        scene_id=scene.scene_id(platform),
        sensor=sensor.name,
        date=scene.date,
        cloud_cover=cloud_cover,
        crs=crs,
        footprint=footprint_geojson(bounds, crs),
        assets=assets,
        mask_band=next((b for b in (sensor.mask_band, "BQA") if b in assets), None),
        metadata_files=metadata,
    )
    return upsert_scene(record, url)
