"""API keys from the ``api_key`` query parameter or the ``x-api-key`` header; per-key rate limits,
counted where every gateway process of the deployment counts them (eotasks/usage.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from eotasks.db import ApiKey, find_api_key
from eotasks.settings import get_settings
from eotasks.usage import RateLimit, Refused
from gateway.errors import ApiError


@dataclass(frozen=True)
class Caller:
    """Who a request is from: an API key that exists and is not revoked (never the key itself)."""

    id: int
    name: str
    masked: str
    daily_quota: int | None

    @classmethod
    def of(cls, record: ApiKey) -> Caller:
        if record.id is None:
            raise ValueError("an API key row without an id")
        return cls(record.id, record.name, record.masked, record.daily_quota)


async def require_key(request: Request) -> Caller:
    key = request.query_params.get("api_key") or request.headers.get("x-api-key")
    if not key:
        raise ApiError(
            401,
            "An API key is required: pass it as the api_key query parameter or the x-api-key header",
            details=[("api_key", "missing")],
        )
    limit: RateLimit = request.app.state.rate_limit
    record, refused = await run_in_threadpool(_authorise, key, limit)
    if record is None:
        raise ApiError(403, "The API key is not valid", details=[("api_key", "unknown")])
    if record.revoked_at is not None:
        raise ApiError(403, "The API key has been revoked", details=[("api_key", "revoked")])
    if refused is not None:
        raise ApiError(429, refused.message, headers={"Retry-After": str(refused.retry_after_s)})
    return Caller.of(record)


KEY_TTL_S = 1.0  # how long a key's row is reused: a revocation in any process holds within this
_keys: dict[str, tuple[float, ApiKey | None]] = {}


def _key_row(key: str) -> ApiKey | None:
    """The key's row, read again after ``KEY_TTL_S``: a client polling many times a second costs one
    lookup a second, not one a request."""
    now = time.monotonic()
    hit = _keys.get(key)
    if hit is not None and now - hit[0] < KEY_TTL_S:
        return hit[1]
    record = find_api_key(key)
    if len(_keys) > 10_000:
        _keys.clear()
    _keys[key] = (now, record)
    return record


def _authorise(key: str, limit: RateLimit) -> tuple[ApiKey | None, Refused | None]:
    """The key's row and, for a valid key, one request spent of its minute (one thread hop for both)."""
    record = _key_row(key)
    if record is None or record.revoked_at is not None or record.id is None:
        return record, None
    return record, limit.hit(record.id)


def new_rate_limit() -> RateLimit:
    return RateLimit(get_settings().rate_limit_per_minute)


# --- openEO (SPEC §8): HTTP Basic (key name, key) for a bearer token ------------------------------


def _token_signature(key_id: int, expires: int, key_hash: str) -> str:
    import hashlib
    import hmac

    secret = get_settings().resolved_signing_secret.encode()
    return hmac.new(secret, f"openeo.{key_id}.{expires}.{key_hash}".encode(), hashlib.sha256).hexdigest()[:40]


def issue_token(record: ApiKey) -> str:
    """A token for ``record``: its id, an expiry and an HMAC over both and the key's hash, so the
    token is never the key, and revoking or replacing the key ends it."""
    assert record.id is not None
    expires = int(time.time()) + get_settings().openeo_token_ttl_s
    return f"{record.id}.{expires}.{_token_signature(record.id, expires, record.key_hash)}"


def basic_login(name: str, key: str) -> ApiKey | None:
    """The key's row when ``key`` is a valid key named ``name``."""
    import hmac

    record = _key_row(key)
    if record is None or record.revoked_at is not None or not hmac.compare_digest(record.name, name):
        return None
    return record


_token_rows: dict[int, tuple[float, ApiKey | None]] = {}


def token_row(token: str) -> ApiKey | None:
    """The key a token was issued for, if the token is genuine, unexpired and the key still valid."""
    import hmac

    from eotasks.db import ApiKey, session

    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    key_id, expires = int(parts[0]), int(parts[1])
    if expires < time.time():
        return None
    now = time.monotonic()
    hit = _token_rows.get(key_id)
    if hit is None or now - hit[0] >= KEY_TTL_S:
        with session() as s:
            row = s.get(ApiKey, key_id)
        hit = (now, row)
        _token_rows[key_id] = hit
    record = hit[1]
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(parts[2], _token_signature(key_id, expires, record.key_hash)):
        return None
    return record


def authorise_token(token: str, limit: RateLimit) -> tuple[ApiKey | None, Refused | None]:
    record = token_row(token)
    if record is None or record.id is None:
        return None, None
    return record, limit.hit(record.id)
