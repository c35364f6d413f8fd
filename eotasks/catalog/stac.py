"""Fill the catalogue from STAC: a static catalogue file, or a STAC API search (pystac-client).

Earth Search v1's ``sentinel-2-l2a``/``-l1c`` and ``landsat-c2-l2`` asset keys (red, nir08, scl,
qa_pixel ...) are mapped onto our band names; scale, offset, nodata and resolution come from each
asset's ``raster:bands`` where present, else from the sensor's defaults. Hrefs are kept as they
are (``s3://``, ``https://`` or paths) and read in place.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import pystac
from shapely.geometry import mapping, shape

from eotasks.catalog.ids import parse_view_id, s2_view_id
from eotasks.catalog.scaling import BandScaling, landsat_default, s2_offset
from eotasks.catalog.scenes import asset_spec, upsert_scene
from eotasks.db import SceneRecord
from eotasks.sensors import SENSORS, Sensor

S2_KEYS = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
LANDSAT_KEYS = {
    "coastal": "B1",
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "nir08": "B5",
    "swir16": "B6",
    "swir22": "B7",
    "pan": "B8",
    "cirrus": "B9",
    "lwir11": "B10",
    "lwir12": "B11",
    "qa_pixel": "QA_PIXEL",
    # Not "qa": in landsat-c2-l2 that is ST_QA, the surface temperature's uncertainty, not a cloud mask.
}
_ES_S2_ID = re.compile(
    r"^(?P<platform>S2[A-D])_(?P<tile>\d{2}[C-HJ-NP-X][A-Z]{2})_(?P<date>\d{8})_(?P<seq>\d+)_L(?P<level>1C|2A)$"
)


def _sensor(item: pystac.Item) -> Sensor:
    collection = (item.collection_id or "").lower()
    platform = str(item.properties.get("platform", "")).lower()
    if collection.startswith("sentinel-2") or platform.startswith("sentinel-2"):
        return SENSORS["sentinel2" if "l1c" in collection else "sentinel2l2a"]
    if collection.startswith("landsat") or platform.startswith("landsat"):
        return SENSORS["landsat9" if platform.endswith("9") or item.id.startswith("LC09") else "landsat8"]
    raise ValueError(f"STAC item {item.id}: unknown collection {item.collection_id!r} / platform {platform!r}")


def _view_id(item: pystac.Item, sensor: Sensor) -> tuple[str, str | None]:
    """(view_id, Sentinel-2 platform)."""
    props = item.properties
    date = (item.datetime or dt.datetime.fromisoformat(props["start_datetime"])).date()
    if sensor.family == "sentinel2":
        level = "L1C" if sensor.name == "sentinel2" else "L2A"
        m = _ES_S2_ID.match(item.id)
        if m:
            return s2_view_id(m["tile"], date, int(m["seq"]), level), m["platform"]
        tile = props.get("s2:mgrs_tile") or "{}{}{}".format(
            int(props["mgrs:utm_zone"]), props["mgrs:latitude_band"], props["mgrs:grid_square"]
        )
        platform = str(props.get("platform", "S2A")).upper().replace("SENTINEL-", "S")
        return s2_view_id(f"{int(tile[:-3]):02d}{tile[-3:]}", date, 0, level), platform
    for candidate in (item.id, props.get("landsat:product_id"), props.get("landsat:scene_id")):
        if candidate:
            try:
                return parse_view_id(f"{sensor.short}/{candidate}").view_id, None
            except ValueError:
                continue
    raise ValueError(f"STAC item {item.id}: no Landsat scene or product id")


def _crs(item: pystac.Item) -> str:
    props = item.properties
    if props.get("proj:code"):
        return str(props["proj:code"])
    if props.get("proj:epsg"):
        return f"EPSG:{int(props['proj:epsg'])}"
    for asset in item.assets.values():
        code = asset.extra_fields.get("proj:code") or asset.extra_fields.get("proj:epsg")
        if code:
            return str(code) if str(code).startswith("EPSG") else f"EPSG:{int(code)}"
    raise ValueError(f"STAC item {item.id}: no proj:code / proj:epsg")


def _default_scaling(item: pystac.Item, sensor: Sensor, scene, band: str, key: str) -> BandScaling:
    """When an asset has no raster:bands scale/offset: by the product (baseline, level) and date."""
    if sensor.family == "sentinel2":
        return BandScaling(1e-4, s2_offset(scene.date, item.properties.get("s2:processing_baseline")))
    level = "L2" if "l2" in (item.collection_id or "").lower() or "_L2S" in (scene.product_id or "") else "L1"
    return landsat_default(band, level, scene.collection or "02", key)


def asset_href(asset: pystac.Asset) -> str:
    """Where the asset really is. A self-contained catalogue (pystac's ``SELF_CONTAINED``, the usual
    way to ship one) writes ``"./red.tif"``, relative to the item's own file: that is resolved
    against the item's location, so the catalogue holds a path or URL GDAL can open from anywhere."""
    href = asset.get_absolute_href() or asset.href
    if "://" not in href and not href.startswith("/vsi"):
        from pathlib import Path

        href = str(Path(href).resolve())
    return href


def record_from_item(item: pystac.Item) -> SceneRecord:
    sensor = _sensor(item)
    view_id, platform = _view_id(item, sensor)
    scene = parse_view_id(view_id)
    keys = S2_KEYS if sensor.family == "sentinel2" else LANDSAT_KEYS
    assets: dict[str, Any] = {}
    for key, asset in item.assets.items():
        band = keys.get(key.lower()) or sensor.resolve_band(key)
        if band is None or band not in {b.name for b in sensor.bands} or band in assets:
            continue
        info = sensor.band(band)
        raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
        default = _default_scaling(item, sensor, scene, band, key) if info.spectral else BandScaling(1.0, 0.0, "DN")
        scale = raster.get("scale", default.scale)
        offset = raster.get("offset", default.offset)
        unit = {"K": "kelvin", "kelvin": "kelvin"}.get(str(raster.get("unit", "")), default.unit) if info.spectral else "DN"
        resolution = raster.get("spatial_resolution") or asset.extra_fields.get("gsd") or info.resolution
        assets[band] = asset_spec(
            asset_href(asset), resolution, scale, offset, raster.get("nodata", sensor.default_nodata), info.spectral, unit
        )
    if not assets:
        raise ValueError(f"STAC item {item.id}: no asset names a band of {sensor.name}")
    mask = next((b for b in (sensor.mask_band, "QA_PIXEL", "BQA") if b and b in assets), None)
    return SceneRecord(
        view_id=view_id,
        scene_id=scene.scene_id(platform),
        sensor=sensor.name,
        date=scene.date,
        cloud_cover=float(item.properties.get("eo:cloud_cover", 0.0)),
        crs=_crs(item),
        footprint=mapping(shape(item.geometry)),
        assets=assets,
        mask_band=mask,
    )


def ingest_items(items: Iterable[pystac.Item], url: str | None = None) -> tuple[list[SceneRecord], list[str]]:
    """Ingest what maps; return the records and one line per item that did not."""
    records, problems = [], []
    for item in items:
        try:
            records.append(upsert_scene(record_from_item(item), url))
        except (ValueError, KeyError) as exc:
            problems.append(f"{item.id}: {exc}")
    return records, problems


def ingest_static_catalog(href: str, url: str | None = None) -> tuple[list[SceneRecord], list[str]]:
    catalog = pystac.read_file(href)
    if isinstance(catalog, pystac.Item):
        return ingest_items([catalog], url)
    if not isinstance(catalog, pystac.Catalog):  # a Collection is a Catalog too
        raise ValueError(f"{href} is a STAC {type(catalog).__name__}, not a catalogue, collection or item")
    return ingest_items(catalog.get_items(recursive=True), url)


def ingest_stac_search(
    api_url: str,
    collections: list[str],
    bbox: list[float] | None = None,
    datetime: str | None = None,
    max_items: int = 500,
    url: str | None = None,
) -> tuple[list[SceneRecord], list[str]]:
    """Search a STAC API (e.g. Earth Search: https://earth-search.aws.element84.com/v1) and ingest the hits."""
    from pystac_client import Client

    search = Client.open(api_url).search(collections=collections, bbox=bbox, datetime=datetime, max_items=max_items)
    return ingest_items(search.items(), url)
