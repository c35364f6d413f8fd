"""Scene search (SPEC §4): ``/api/lms/search/v2`` over every sensor, or one dataset in the path."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from shapely.geometry import shape as shapely_shape
from starlette.concurrency import run_in_threadpool

from eotasks.catalog.search import search_scenes
from eotasks.db import SceneRecord
from eotasks.models import SearchRequest
from eotasks.sensors import normalize_sensor_name
from gateway.body import validated
from gateway.deps import Key
from gateway.errors import ApiError
from gateway.routes.tasks import KEYED, errors

router = APIRouter(tags=["search"])
SEARCH: TypeAdapter[SearchRequest] = TypeAdapter(SearchRequest)
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/SearchRequest"},
                "example": {
                    "search": {"date": {"from": "2023-01-01", "to": "2023-12-31"}, "cloudCoverage": {"from": 0, "to": 30}},
                    "limit": 10,
                },
            }
        },
    }
}


def search_result(record: SceneRecord, fields: list[str] | None) -> dict[str, Any]:
    out = {
        "sceneID": record.scene_id,
        "view_id": record.view_id,
        "date": record.date.isoformat(),
        "cloudCoverage": record.cloud_cover,
        "satelliteName": record.sensor,
        "dataGeometry": record.footprint,
        "crs": record.crs,
        "bands": sorted(record.assets),
        "maskBand": record.mask_band,
    }
    return {k: v for k, v in out.items() if k in fields} if fields else out


async def _search(request: Request, dataset: str | None) -> JSONResponse:
    body, _ = await validated(request, SEARCH)
    sensors = body.search.satellites
    if dataset is not None:
        long = normalize_sensor_name(dataset)
        if long is None:
            raise ApiError(404, f"Unknown dataset {dataset!r}", [("dataset", "unknown")])
        sensors = [long]
    shape = body.search.shape
    cloud = body.search.cloudCoverage
    scenes, found = await run_in_threadpool(
        search_scenes,
        sensors,
        body.search.date_ranges(),
        shapely_shape(shape) if shape else None,
        (cloud.from_, cloud.to) if cloud else (None, None),
        body.sort.get("date", "desc") == "desc",
        (body.page - 1) * body.limit,
        body.limit,
    )
    return JSONResponse(
        {
            "results": [search_result(r, body.fields) for r in scenes],
            "meta": {"page": body.page, "found": found, "limit": body.limit},
        }
    )


@router.post("/api/lms/search/v2", responses=errors(400, *KEYED, 413), summary="Search scenes of any sensors", openapi_extra=BODY)
async def search_any(request: Request, key: Key) -> JSONResponse:
    return await _search(request, None)


@router.post(
    "/api/lms/search/v2/{dataset}",
    responses=errors(400, *KEYED, 404, 413),
    summary="Search scenes of one dataset",
    openapi_extra=BODY,
)
async def search_dataset(request: Request, dataset: str, key: Key) -> JSONResponse:
    return await _search(request, dataset)
