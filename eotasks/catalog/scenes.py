"""Reading and writing catalogue rows; turning a row into the assets the raster code reads."""

from __future__ import annotations

from typing import Any

from shapely.geometry import shape
from sqlmodel import col, select

from eotasks.db import SceneRecord, session
from eotasks.raster.read import Asset


def upsert_scene(record: SceneRecord, url: str | None = None) -> SceneRecord:
    """Insert or replace a scene; its bounding-box columns are derived from its footprint here."""
    record.west, record.south, record.east, record.north = shape(record.footprint).bounds
    with session(url) as s:
        existing = s.get(SceneRecord, record.view_id)
        if existing is not None:
            for key, value in record.model_dump().items():
                setattr(existing, key, value)
            record = existing
        s.add(record)
        s.commit()
        s.refresh(record)
        return record


def get_scene(view_id: str, url: str | None = None) -> SceneRecord | None:
    with session(url) as s:
        return s.get(SceneRecord, view_id)


def list_scenes(sensor: str | None = None, url: str | None = None) -> list[SceneRecord]:
    with session(url) as s:
        query = select(SceneRecord).order_by(col(SceneRecord.date), col(SceneRecord.view_id))
        if sensor:
            query = query.where(SceneRecord.sensor == sensor)
        return list(s.exec(query).all())


def scene_assets(record: SceneRecord) -> dict[str, Asset]:
    return {band: Asset(**spec) for band, spec in record.assets.items()}


def asset_spec(
    href: str,
    resolution: float,
    scale: float,
    offset: float,
    nodata: float | None,
    spectral: bool,
    unit: str | None = None,
    constants: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One band's catalogue entry: where it is, its resolution, nodata, and how its stored numbers
    become physical values (value = DN x scale + offset, in ``unit``)."""
    spec = {
        "href": href,
        "resolution": float(resolution),
        "scale": scale,
        "offset": offset,
        "nodata": nodata,
        "spectral": spectral,
        "unit": unit or ("reflectance" if spectral else "DN"),
    }
    if constants:
        spec["constants"] = constants
    return spec
