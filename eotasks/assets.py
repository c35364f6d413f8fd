"""How GDAL reaches scene assets: local paths, ``s3://`` (read in place by HTTP range requests
through GDAL's /vsis3/, custom endpoint and requester-pays supported) and ``https://``.

The GDAL options are built once per process from settings, or from a saved prefect-aws
``AwsCredentials`` block (``EOTASKS_ASSETS_CREDENTIALS_BLOCK``), so an operator changes asset
credentials in the Prefect UI.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import rasterio

from eotasks.settings import get_settings

# Read only what a window needs: no directory listings, no sidecar probing, a block cache.
_BASE = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.jp2,.JP2",
    "GDAL_HTTP_TIMEOUT": "30",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "VSI_CACHE": "TRUE",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


@functools.lru_cache(maxsize=1)
def gdal_options() -> dict[str, Any]:
    """GDAL options for remote assets; credentials go in ``aws_session_options`` (rasterio wants a session)."""
    settings = get_settings()
    options: dict[str, Any] = dict(_BASE)
    creds = _credentials()
    endpoint = creds.pop("endpoint_url", None) or settings.assets_s3_endpoint_url or settings.s3_endpoint_url
    if endpoint:
        parts = urlsplit(endpoint)
        options.update(
            AWS_S3_ENDPOINT=parts.netloc or parts.path,
            AWS_HTTPS="YES" if parts.scheme == "https" else "NO",
            AWS_VIRTUAL_HOSTING="FALSE",
        )
    if settings.assets_requester_pays:
        options["AWS_REQUEST_PAYER"] = "requester"
    return options


@functools.lru_cache(maxsize=1)
def aws_session_options() -> dict[str, Any]:
    """Credentials from settings or a block when given; otherwise boto's own chain (environment,
    profile, instance or task role). Requests go unsigned only when EOTASKS_ASSETS_UNSIGNED says so,
    or, by default ("auto"), when that chain has no credentials at all (public buckets)."""
    creds = _credentials()
    creds.pop("endpoint_url", None)
    session: dict[str, Any] = {"region_name": creds.get("region_name"), "requester_pays": get_settings().assets_requester_pays}
    mode = get_settings().assets_unsigned.lower()
    if mode in ("true", "1", "yes"):
        session["aws_unsigned"] = True
    elif creds.get("aws_access_key_id") and creds.get("aws_secret_access_key"):
        session.update({k: v for k, v in creds.items() if k.startswith("aws_")})
    elif mode == "auto" and not _chain_has_credentials(session["region_name"]):
        session["aws_unsigned"] = True
    return session


def _chain_has_credentials(region: str | None) -> bool:
    import boto3

    return boto3.Session(region_name=region).get_credentials() is not None


def _credentials() -> dict[str, Any]:
    settings = get_settings()
    out: dict[str, Any] = {
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "aws_session_token": os.environ.get("AWS_SESSION_TOKEN"),
        "region_name": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or settings.s3_region,
    }
    if settings.assets_credentials_block:
        from typing import cast

        from prefect_aws import AwsCredentials

        block = cast(AwsCredentials, AwsCredentials.load(settings.assets_credentials_block))
        out["aws_access_key_id"] = block.aws_access_key_id or out["aws_access_key_id"]
        if block.aws_secret_access_key:
            out["aws_secret_access_key"] = block.aws_secret_access_key.get_secret_value()
        out["aws_session_token"] = block.aws_session_token or out["aws_session_token"]
        out["region_name"] = block.region_name or out["region_name"]
        params = block.aws_client_parameters
        if params and params.endpoint_url:
            out["endpoint_url"] = params.endpoint_url
    return {k: v for k, v in out.items() if v}


@contextmanager
def open_asset(href: str) -> Iterator[rasterio.DatasetReader]:
    """Open a band file wherever it lives, with the GDAL options for remote files in force."""
    if href.startswith(("s3://", "https://", "http://", "/vsi")):
        from rasterio.session import AWSSession

        with rasterio.Env(session=AWSSession(**aws_session_options()), **gdal_options()), rasterio.open(href) as dataset:
            yield dataset
    else:
        with rasterio.open(href) as dataset:
            yield dataset
