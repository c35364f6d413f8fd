"""openEO collections: one per catalogued sensor and level, as STAC 1.0 collections with the data
cube and EO extensions, and the extent of what the catalogue holds.

Values (SPEC §8): Sentinel-2 bands are digital numbers on the pre-04.00 scale, reflectance x 10,000
with the 04.00 offset removed (what the large back-ends and the client's tutorials use), so
``raster:bands`` says scale 0.0001 and offset 0 whatever the processing baseline; Landsat
Collection 2 Level-2 bands are the stored numbers with the product's scale and offset. Class and
QA bands are their stored numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eotasks.sensors import SENSORS, Sensor

STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/datacube/v2.2.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
# Our generic band names -> STAC's common names.
COMMON = {
    "COASTAL": "coastal",
    "BLUE": "blue",
    "GREEN": "green",
    "RED": "red",
    "RE1": "rededge",
    "RE2": "rededge",
    "RE3": "rededge",
    "NIR": "nir",
    "NIR08": "nir08",
    "SWIR1": "swir16",
    "SWIR2": "swir22",
    "CIRRUS": "cirrus",
    "PAN": "pan",
    "TIR1": "lwir11",
    "TIR2": "lwir12",
}
S2_SCALE = 1e4  # reflectance -> openEO's Sentinel-2 numbers


@dataclass(frozen=True)
class Collection:
    id: str
    sensor: str
    title: str
    description: str
    platform: str
    instrument: str
    license: str

    @property
    def spec(self) -> Sensor:
        return SENSORS[self.sensor]

    @property
    def bands(self) -> list[str]:
        return [b.name for b in self.spec.bands if b.name != "BQA"]

    def common_names(self) -> dict[str, str]:
        out = {}
        for band in self.spec.bands:
            for generic in band.generic:
                if generic in COMMON:
                    out[band.name] = COMMON[generic]
                    break
        return out

    def as_reflectance_x10000(self) -> bool:
        return self.spec.family == "sentinel2"


COLLECTIONS: dict[str, Collection] = {
    c.id: c
    for c in (
        Collection(
            "SENTINEL2_L1C",
            "sentinel2",
            "Sentinel-2 Level-1C",
            "Sentinel-2 MSI top-of-atmosphere reflectance (Level-1C), 13 bands at 10, 20 and 60 m.",
            "sentinel-2a",
            "msi",
            "proprietary",
        ),
        Collection(
            "SENTINEL2_L2A",
            "sentinel2l2a",
            "Sentinel-2 Level-2A",
            "Sentinel-2 MSI bottom-of-atmosphere reflectance (Level-2A) with the scene classification (SCL).",
            "sentinel-2a",
            "msi",
            "proprietary",
        ),
        Collection(
            "LANDSAT8_L2",
            "landsat8",
            "Landsat 8 Collection 2 Level-2",
            "Landsat 8 OLI/TIRS surface reflectance and temperature (Collection 2 Level-2), 30 m.",
            "landsat-8",
            "oli",
            "proprietary",
        ),
        Collection(
            "LANDSAT9_L2",
            "landsat9",
            "Landsat 9 Collection 2 Level-2",
            "Landsat 9 OLI-2/TIRS-2 surface reflectance and temperature (Collection 2 Level-2), 30 m.",
            "landsat-9",
            "oli",
            "proprietary",
        ),
    )
}


def catalogue_extent(sensor: str) -> tuple[list[float], list[str | None]]:
    """(bbox, [first, last] RFC 3339) of the sensor's catalogued scenes (the whole world when none)."""
    from sqlmodel import func, select

    from eotasks.db import SceneRecord, session

    with session() as s:
        row = s.exec(
            select(  # type: ignore[call-overload]
                func.min(SceneRecord.west),
                func.min(SceneRecord.south),
                func.max(SceneRecord.east),
                func.max(SceneRecord.north),
                func.min(SceneRecord.date),
                func.max(SceneRecord.date),
            ).where(SceneRecord.sensor == sensor)
        ).one()
    if row[0] is None:
        return [-180.0, -90.0, 180.0, 90.0], [None, None]
    bbox = [float(v) for v in row[:4]]
    return bbox, [f"{row[4].isoformat()}T00:00:00Z", f"{row[5].isoformat()}T23:59:59Z"]


def band_metadata(collection: Collection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(eo:bands, raster:bands) of the collection, in the order of its ``bands`` dimension."""
    common = collection.common_names()
    eo, raster = [], []
    for band in collection.spec.bands:
        if band.name not in collection.bands:
            continue
        one: dict[str, Any] = {"name": band.name, "gsd": band.resolution}
        if band.name in common:
            one["common_name"] = common[band.name]
        eo.append(one)
        values: dict[str, Any] = {"name": band.name, "spatial_resolution": band.resolution}
        if band.spectral:
            if collection.as_reflectance_x10000():
                values.update(scale=1 / S2_SCALE, offset=0.0)
            else:
                values.update(scale=collection.spec.default_scale, offset=collection.spec.default_offset)
        raster.append(values)
    return eo, raster


def collection_metadata(collection: Collection, base_url: str, full: bool = True) -> dict[str, Any]:
    bbox, interval = catalogue_extent(collection.sensor)
    eo, raster = band_metadata(collection)
    out: dict[str, Any] = {
        "stac_version": "1.0.0",
        "stac_extensions": STAC_EXTENSIONS,
        "type": "Collection",
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "license": collection.license,
        "keywords": [collection.platform, collection.instrument, "eotasks"],
        "providers": [{"name": "eotasks", "roles": ["host", "processor"]}],
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "links": [
            {"rel": "self", "href": f"{base_url}/collections/{collection.id}", "type": "application/json"},
            {"rel": "root", "href": f"{base_url}/", "type": "application/json"},
            {"rel": "parent", "href": f"{base_url}/", "type": "application/json"},
        ],
        "cube:dimensions": {
            "x": {"type": "spatial", "axis": "x", "extent": [bbox[0], bbox[2]], "reference_system": 4326},
            "y": {"type": "spatial", "axis": "y", "extent": [bbox[1], bbox[3]], "reference_system": 4326},
            "t": {"type": "temporal", "extent": interval},
            "bands": {"type": "bands", "values": collection.bands},
        },
        "summaries": {
            "eo:bands": eo,
            "raster:bands": raster,
            "platform": [collection.platform],
            "instruments": [collection.instrument],
        },
    }
    if not full:
        out.pop("summaries")
    return out
