"""API keys from the ``api_key`` query parameter or the ``x-api-key`` header; per-key rate limits."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from eotasks.db import ApiKey, find_api_key
from eotasks.settings import get_settings
from gateway.errors import ApiError


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.buckets: dict[int, tuple[float, float]] = {}
        self.lock = asyncio.Lock()

    async def check(self, key_id: int) -> None:
        if self.per_minute <= 0:
            return
        async with self.lock:
            now = time.monotonic()
            tokens, last = self.buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60)
            if tokens < 1:
                retry = math.ceil((1 - tokens) * 60 / self.per_minute)
                self.buckets[key_id] = (tokens, now)
                raise ApiError(
                    429,
                    f"Rate limit of {self.per_minute} requests a minute exceeded; retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                )
            self.buckets[key_id] = (tokens - 1, now)


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
    record = await run_in_threadpool(find_api_key, key)
    if record is None:
        raise ApiError(403, "The API key is not valid", details=[("api_key", "unknown")])
    if record.revoked_at is not None:
        raise ApiError(403, "The API key has been revoked", details=[("api_key", "revoked")])
    caller = Caller.of(record)
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.check(caller.id)
    return caller


def new_rate_limiter() -> RateLimiter:
    return RateLimiter(get_settings().rate_limit_per_minute)
