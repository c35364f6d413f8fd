"""Scene search over the catalogue: sensors, dates (inclusive), cloud cover, AOI intersection."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import or_
from sqlmodel import select

from eotasks.db import SceneRecord, session

DateRange = tuple[dt.date | None, dt.date | None]


def search_scenes(
    sensors: list[str] | None = None,
    dates: list[DateRange] | None = None,
    aoi: BaseGeometry | None = None,
    cloud: tuple[float | None, float | None] = (None, None),
    newest_first: bool = True,
    offset: int = 0,
    limit: int | None = None,
    url: str | None = None,
) -> tuple[list[SceneRecord], int]:
    """Matching scenes (a page of them) and how many match in all."""
    query = select(SceneRecord)
    if sensors is not None:
        query = query.where(SceneRecord.sensor.in_(sensors))  # type: ignore[attr-defined]
    if dates:
        clauses = []
        for start, end in dates:
            parts = []
            if start is not None:
                parts.append(SceneRecord.date >= start)
            if end is not None:
                parts.append(SceneRecord.date <= end)
            if parts:
                clauses.append(parts[0] if len(parts) == 1 else parts[0] & parts[1])
        if clauses:
            query = query.where(or_(*clauses))
    if cloud[0] is not None:
        query = query.where(SceneRecord.cloud_cover >= cloud[0])
    if cloud[1] is not None:
        query = query.where(SceneRecord.cloud_cover <= cloud[1])
    if aoi is not None:
        # Cheap bounding-box pre-filter in SQL, exact footprint intersection below.
        minx, miny, maxx, maxy = aoi.bounds
        query = query.where(SceneRecord.west <= maxx, SceneRecord.east >= minx, SceneRecord.south <= maxy, SceneRecord.north >= miny)
    order = (SceneRecord.date.desc(), SceneRecord.view_id) if newest_first else (SceneRecord.date, SceneRecord.view_id)  # type: ignore[attr-defined]
    with session(url) as s:
        rows = list(s.exec(query.order_by(*order)).all())
    if aoi is not None:
        rows = [r for r in rows if shape(r.footprint).intersects(aoi)]
    found = len(rows)
    page = rows[offset : offset + limit if limit is not None else None]
    return page, found
