"""Downloads on the embedded default: the gateway serves the local result store by signed URLs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from eotasks.settings import get_settings
from eotasks.store import verify
from gateway.deps import Store
from gateway.errors import ApiError

router = APIRouter(tags=["downloads"])
MEDIA = {
    ".tif": "image/tiff",
    ".jp2": "image/jp2",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".zip": "application/zip",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".csv": "text/csv",
    ".nc": "application/x-netcdf",
}


@router.get(
    "/api/download/{key:path}",
    summary="A result file, by a signed URL",
    responses={
        400: {"description": "expires or signature missing"},
        403: {"description": "invalid or expired link"},
        404: {"description": "no such file"},
    },
)
async def download(key: str, store: Store, expires: Annotated[int, Query()], signature: Annotated[str, Query()]) -> FileResponse:
    if store.is_s3 or not verify(key, expires, signature, get_settings().resolved_signing_secret):
        raise ApiError(403, "The download link is invalid or has expired")
    try:
        path = store.local_path(key)
    except ValueError:
        raise ApiError(404, "Not found") from None
    if not path.is_file():
        raise ApiError(404, "Not found")
    return FileResponse(path, media_type=MEDIA.get(path.suffix.lower(), "application/octet-stream"), filename=path.name)
