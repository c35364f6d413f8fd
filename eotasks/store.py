"""The result store: a local folder or an S3 (or S3-compatible) bucket, through one code path.

Both are fsspec filesystems (local, s3fs); only URL signing differs: S3 gives a presigned URL,
the local folder a URL served by the gateway and signed with an HMAC over key and expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlencode

import fsspec

from eotasks.settings import Settings, get_settings

S3_MAX_PRESIGN_S = 7 * 86400


@dataclass
class ResultStore:
    url: str  # "/abs/folder" or "s3://bucket/prefix"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)  # never in a repr, a log line or a traceback

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.is_s3:
            client_kwargs = {"region_name": self.region}
            if self.endpoint_url:
                client_kwargs["endpoint_url"] = self.endpoint_url
            return fsspec.filesystem(
                "s3", key=self.key_id, secret=self.secret, client_kwargs=client_kwargs, skip_instance_cache=False
            )
        return fsspec.filesystem("file")

    def path(self, key: str) -> str:
        safe = safe_key(key)
        return f"{self.url.rstrip('/')}/{safe}" if self.is_s3 else str(Path(self.url) / safe)

    def put(self, key: str, data: bytes) -> str:
        return self.put_chunks(key, [data])

    def put_chunks(self, key: str, chunks: Iterable[bytes]) -> str:
        """Write ``key`` from pieces. A reader never sees a half-written file: a local file is written
        under a new name and renamed over the key when whole; an S3 object appears when its upload
        completes. So a run that was resubmitted while its first process lived on, writing the same
        key, leaves one whole file, not an interleaving of two."""
        path = self.path(key)
        if self.is_s3:
            with self.fs.open(path, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            return key
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        return key

    def put_file(self, key: str, source: Path) -> str:
        """Upload a local file (streamed: never read into memory whole)."""

        def pieces() -> Iterator[bytes]:
            with open(source, "rb") as f:
                while chunk := f.read(8 << 20):
                    yield chunk

        return self.put_chunks(key, pieces())

    def get(self, key: str) -> bytes:
        with self.fs.open(self.path(key), "rb") as f:
            return f.read()

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def local_path(self, key: str) -> Path:
        if self.is_s3:
            raise ValueError("an S3 store has no local paths")
        root = Path(self.url).resolve()
        path = (root / safe_key(key)).resolve()
        if not path.is_relative_to(root):
            raise ValueError("key escapes the result store")
        return path

    def download_url(self, key: str, settings: Settings | None = None, ttl_s: int | None = None) -> str:
        settings = settings or get_settings()
        ttl = ttl_s or settings.download_url_ttl_s
        if self.is_s3:
            ttl = min(ttl, S3_MAX_PRESIGN_S)  # SigV4 presigned URLs are refused beyond 7 days
            import boto3
            from botocore.config import Config

            bucket, _, prefix = self.url.removeprefix("s3://").partition("/")
            object_key = f"{prefix.strip('/')}/{safe_key(key)}" if prefix.strip("/") else safe_key(key)
            client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.key_id,
                aws_secret_access_key=self.secret,
                config=Config(signature_version="s3v4"),
            )
            return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": object_key}, ExpiresIn=ttl)
        expires = int(time.time()) + ttl
        sig = sign(key, expires, settings.resolved_signing_secret)
        query = urlencode({"expires": expires, "signature": sig})
        return f"{settings.resolved_public_url}/api/download/{quote(safe_key(key))}?{query}"


def safe_key(key: str) -> str:
    """Keys are relative POSIX paths of plain parts; nothing a client sends can climb out."""
    parts = PurePosixPath(key).parts
    if not parts or any(p in ("", ".", "..") or p.startswith("/") or "\\" in p for p in parts):
        raise ValueError(f"invalid store key {key!r}")
    return "/".join(parts)


def sign(key: str, expires: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def verify(key: str, expires: int, signature: str, secret: str) -> bool:
    """Constant-time; any signature that is not 64 hex digits is simply wrong (not an error)."""
    if len(signature) != 64 or not all(c in "0123456789abcdef" for c in signature):
        return False
    return expires >= time.time() and hmac.compare_digest(sign(key, expires, secret), signature)


def get_store(settings: Settings | None = None) -> ResultStore:
    """The store from settings, or from a saved prefect-aws S3Bucket block when one is named."""
    settings = settings or get_settings()
    if settings.store_block:
        return _store_from_block(settings.store_block, settings)
    import os

    return ResultStore(
        url=settings.resolved_store_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret=os.environ.get("AWS_SECRET_ACCESS_KEY"),
    )


def _store_from_block(name: str, settings: Settings) -> ResultStore:
    from typing import cast

    from prefect_aws import S3Bucket

    block = cast(S3Bucket, S3Bucket.load(name))  # called from plain threads: the block, not a coroutine
    creds = block.credentials
    params = getattr(creds, "aws_client_parameters", None)
    endpoint = getattr(params, "endpoint_url", None) if params else None
    # AwsCredentials names its pair aws_access_key_id / aws_secret_access_key; MinIOCredentials,
    # minio_root_user / minio_root_password.
    key_id = getattr(creds, "aws_access_key_id", None) or getattr(creds, "minio_root_user", None)
    secret = getattr(creds, "aws_secret_access_key", None) or getattr(creds, "minio_root_password", None)
    return ResultStore(
        url=f"s3://{block.bucket_name}/{block.bucket_folder}".rstrip("/"),
        endpoint_url=endpoint or settings.s3_endpoint_url,
        region=getattr(creds, "region_name", None) or settings.s3_region,
        key_id=key_id,
        secret=secret.get_secret_value() if secret is not None else None,
    )
