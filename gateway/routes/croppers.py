"""Croppers: a geometry saved once, named by a hash of it, used as ``cropper_ref`` (SPEC §2)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, TypeAdapter, field_validator

from eotasks.models import checked_geometry
from gateway import records
from gateway.body import validated
from gateway.deps import Key
from gateway.routes.tasks import KEYED, errors

router = APIRouter(tags=["cropper"])


class CropperFeature(BaseModel):
    """A GeoJSON Feature whose geometry is a Polygon or MultiPolygon (properties are not kept)."""

    model_config = ConfigDict(extra="ignore")
    type: str
    geometry: dict[str, Any]

    @field_validator("type")
    @classmethod
    def _feature(cls, v: str) -> str:
        if v != "Feature":
            raise ValueError("must be Feature: the body is a GeoJSON Feature with a Polygon or MultiPolygon geometry")
        return v

    @field_validator("geometry", mode="before")
    @classmethod
    def _geometry(cls, v: Any) -> dict[str, Any]:
        return checked_geometry(v)  # rebuilt: nothing of the client's JSON is stored


class CropperRef(BaseModel):
    cropper_ref: str


FEATURE: TypeAdapter[CropperFeature] = TypeAdapter(CropperFeature)


@router.post(
    "/api/render/cropper/",
    response_model=CropperRef,
    responses=errors(400, *KEYED, 413),
    summary="Save a geometry; answer its cropper_ref",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": FEATURE.json_schema(ref_template="#/components/schemas/{model}"),
                    "example": {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[-75.65, 37.65], [-75.6, 37.64], [-75.62, 37.7], [-75.65, 37.65]]],
                        },
                    },
                }
            },
        }
    },
)
async def save_cropper(request: Request, key: Key) -> CropperRef:
    feature, _ = await validated(request, FEATURE)
    canonical = json.dumps(feature.geometry, sort_keys=True, separators=(",", ":"))
    ref = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    await records.save_cropper(ref, feature.geometry)
    return CropperRef(cropper_ref=ref)
