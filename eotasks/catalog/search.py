"""Scene search over the catalogue: sensors, dates (inclusive), cloud cover, AOI intersection."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep
from sqlalchemy import func, or_
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
        query = query.where(
            SceneRecord.west <= maxx, SceneRecord.east >= minx, SceneRecord.south <= maxy, SceneRecord.north >= miny
        )
    order = (SceneRecord.date.desc(), SceneRecord.view_id) if newest_first else (SceneRecord.date, SceneRecord.view_id)  # type: ignore[attr-defined]
    with session(url) as s:
        if aoi is None:  # everything in SQL: the count, then one page of rows
            found = s.exec(select(func.count()).select_from(query.subquery())).one()
            page_query = query.order_by(*order).offset(offset)
            if limit is not None:
                page_query = page_query.limit(limit)
            return list(s.exec(page_query).all()), int(found)
        # The footprint test is exact geometry, done here, over the bounding-box matches streamed in
        # chunks (id and footprint only): memory holds one page, however many scenes match.
        prepared = prep(aoi)
        ids_query = query.with_only_columns(SceneRecord.view_id, SceneRecord.footprint).order_by(*order)
        found, page_ids = 0, []
        for view_id, footprint in s.execute(ids_query.execution_options(yield_per=500)):
            if prepared.intersects(shape(footprint)):
                if found >= offset and (limit is None or len(page_ids) < limit):
                    page_ids.append(view_id)
                found += 1
        rows = (
            {r.view_id: r for r in s.exec(select(SceneRecord).where(SceneRecord.view_id.in_(page_ids))).all()} if page_ids else {}
        )  # type: ignore[attr-defined]
        return [rows[i] for i in page_ids], found
