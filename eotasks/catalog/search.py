"""Scene search over the catalogue: sensors, dates (inclusive), cloud cover, AOI intersection."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep
from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import col, select

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
        query = query.where(col(SceneRecord.sensor).in_(sensors))
    if dates:
        clauses: list[ColumnElement[bool]] = []
        date = col(SceneRecord.date)
        for start, end in dates:
            parts = []
            if start is not None:
                parts.append(date >= start)
            if end is not None:
                parts.append(date <= end)
            if parts:
                clauses.append(and_(*parts))
        if clauses:
            query = query.where(or_(*clauses))
    if cloud[0] is not None:
        query = query.where(col(SceneRecord.cloud_cover) >= cloud[0])
    if cloud[1] is not None:
        query = query.where(col(SceneRecord.cloud_cover) <= cloud[1])
    if aoi is not None:
        # Cheap bounding-box pre-filter in SQL, exact footprint intersection below.
        minx, miny, maxx, maxy = aoi.bounds
        west, east, south, north = col(SceneRecord.west), col(SceneRecord.east), col(SceneRecord.south), col(SceneRecord.north)
        query = query.where(west <= maxx, east >= minx, south <= maxy, north >= miny)
    date_order = col(SceneRecord.date).desc() if newest_first else col(SceneRecord.date)
    order = (date_order, col(SceneRecord.view_id))
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
        ids_query = query.with_only_columns(col(SceneRecord.view_id), col(SceneRecord.footprint)).order_by(*order)
        found, page_ids = 0, list[str]()
        for view_id, footprint in s.execute(ids_query.execution_options(yield_per=500)):
            if prepared.intersects(shape(footprint)):
                if found >= offset and (limit is None or len(page_ids) < limit):
                    page_ids.append(view_id)
                found += 1
        in_page = select(SceneRecord).where(col(SceneRecord.view_id).in_(page_ids))
        rows = {r.view_id: r for r in s.exec(in_page).all()} if page_ids else {}
        return [rows[i] for i in page_ids], found
