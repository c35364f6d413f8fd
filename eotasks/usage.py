"""Rate limits and daily quotas, shared by every gateway process of a deployment.

The rate limit is the ``limits`` library's fixed-window strategy over one of two storages: Redis
when the deployment has one (``EOTASKS_REDIS_URL``), else our own database (``SqlStorage``, one
counter row per key and limit, incremented atomically by one upsert). Either way every gateway
process counts against the same number.

The daily quota counts tasks, not requests, so it lives beside the tasks: ``take_quota`` spends one
in the same transaction that reserves the task's row, so a task that is not created (a duplicate
Idempotency-Key, a failure) spends nothing and two processes cannot both take the last one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from eotasks.db import get_engine
from eotasks.settings import get_settings

log = logging.getLogger("eotasks.gateway")
TABLE = "usage_counters"

# One statement for both SQLite (3.35+) and PostgreSQL: a window that has expired starts again at
# this hit; one that has not is incremented, unless that would pass ``cap``. The row comes back
# only when it was written.
_UPSERT = text(
    f"""
    INSERT INTO {TABLE} (key, count, expires_at) VALUES (:key, :amount, :expires)
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN {TABLE}.expires_at <= :now THEN :amount ELSE {TABLE}.count + :amount END,
      expires_at = CASE WHEN {TABLE}.expires_at <= :now THEN :expires ELSE {TABLE}.expires_at END
    WHERE {TABLE}.expires_at <= :now OR {TABLE}.count + :amount <= :cap
    RETURNING count
    """
)
_NO_CAP = 2**62


def _upsert(connection: Session | Connection, key: str, amount: int, expires: float, cap: int) -> int | None:
    now = time.time()
    row = connection.execute(_UPSERT, {"key": key, "amount": amount, "expires": expires, "now": now, "cap": cap}).first()
    return None if row is None else int(row[0])


class SqlStorage(Storage):
    """A ``limits`` storage in our database: counters with an expiry, one row each."""

    STORAGE_SCHEME = None

    def __init__(self, url: str | None = None) -> None:
        super().__init__()
        self.url = url
        resolved = url or get_settings().resolved_database_url
        self._writing: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if resolved.startswith("sqlite") else contextlib.nullcontext()
        )
        # SQLite: each thread's own connection of the sqlite3 module for the hit itself. The writers
        # of this process take turns on the lock above, and each turn holds it for SQLAlchemy's
        # Python work too, which waits for the GIL behind the event loop: the module's own calls
        # run with the GIL released, so a turn is a fraction as long.
        self._sqlite_file = resolved.removeprefix("sqlite:///") if resolved.startswith("sqlite:///") else None
        self._local = threading.local()

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        # SQLite takes one writer at a time and makes the others sleep and retry (in steps of
        # milliseconds): this process's writers queue here instead, each waiting only its turn.
        if self._sqlite_file is not None:
            with self._writing:
                return self._sqlite_incr(key, expiry, amount)
        with self._writing, get_engine(self.url).begin() as conn:
            count = _upsert(conn, key, amount, time.time() + expiry, _NO_CAP)
        return count or 0

    def _sqlite_incr(self, key: str, expiry: int, amount: int) -> int:
        import sqlite3

        connection = getattr(self._local, "connection", None)
        if connection is None:
            # The database's own settings (WAL) persist in its file; a busy one is waited for.
            connection = sqlite3.connect(self._sqlite_file or "", timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        from sqlalchemy.exc import OperationalError

        now = time.time()
        params = {"key": key, "amount": amount, "expires": now + expiry, "now": now, "cap": _NO_CAP}
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(_UPSERT.text, params).fetchone()
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # as SQLAlchemy reports it, so the gateway answers 503 as before
            raise OperationalError(_UPSERT.text, params, exc) from exc
        return int(row[0]) if row else 0

    def get(self, key: str) -> int:
        with get_engine(self.url).connect() as conn:
            row = conn.execute(
                text(f"SELECT count FROM {TABLE} WHERE key = :key AND expires_at > :now"), {"key": key, "now": time.time()}
            ).first()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        with get_engine(self.url).connect() as conn:
            row = conn.execute(text(f"SELECT expires_at FROM {TABLE} WHERE key = :key"), {"key": key}).first()
        return float(row[0]) if row and row[0] > time.time() else time.time()

    def check(self) -> bool:
        try:
            with get_engine(self.url).connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with get_engine(self.url).begin() as conn:
            return int(conn.execute(text(f"DELETE FROM {TABLE}")).rowcount)

    def clear(self, key: str) -> None:
        with get_engine(self.url).begin() as conn:
            conn.execute(text(f"DELETE FROM {TABLE} WHERE key = :key"), {"key": key})


@dataclass(frozen=True)
class Refused:
    """Over a limit: the sentence for the client and when to try again."""

    message: str
    retry_after_s: int


class RateLimit:
    """``per_minute`` requests a minute per key (0: no limit), in fixed one-minute windows."""

    def __init__(self, per_minute: int, storage: Storage | None = None):
        self.per_minute = per_minute
        self.item: RateLimitItem = RateLimitItemPerMinute(max(per_minute, 1))
        self.storage = storage if storage is not None else default_storage()
        self.strategy = FixedWindowRateLimiter(self.storage)

    @property
    def storage_name(self) -> str:
        return "redis" if isinstance(self.storage, RedisStorage) else "database"

    def hit(self, key_id: int) -> Refused | None:
        """Spend one request of the key's minute; what to answer when there is none left. A storage
        that cannot be reached lets the request through (logged): the limit protects the service,
        it must not take it down."""
        if self.per_minute <= 0:
            return None
        try:
            if self.strategy.hit(self.item, "key", str(key_id)):
                return None
            reset = self.strategy.get_window_stats(self.item, "key", str(key_id)).reset_time
        except Exception as exc:
            if isinstance(self.storage, SqlStorage) or not isinstance(exc, self.storage.base_exceptions):
                raise
            _warn_unreachable(exc)
            return None
        retry = max(1, math.ceil(reset - time.time()))
        return Refused(f"Rate limit of {self.per_minute} requests a minute exceeded; retry in {retry} s", retry)


def default_storage() -> Storage:
    settings = get_settings()
    if settings.redis_url:
        # Key ids are per database: deployments sharing one Redis count apart.
        database = hashlib.sha256(settings.resolved_database_url.encode()).hexdigest()[:16]
        return RedisStorage(settings.redis_url, key_prefix=f"eotasks:{database}", socket_timeout=2, socket_connect_timeout=2)
    return SqlStorage()


_last_warning = 0.0


def _warn_unreachable(exc: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning > 60:
        _last_warning = time.monotonic()
        log.warning("rate limit storage unreachable (%s); requests are not limited until it answers", type(exc).__name__)


def next_utc_midnight(now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def take_quota(s: Session, key_id: int, quota: int) -> Refused | None:
    """Spend one of the key's ``quota`` tasks of this UTC day inside ``s``'s transaction (the caller
    commits it with the task's row, or rolls both back)."""
    midnight = next_utc_midnight()
    retry = max(1, math.ceil((midnight - dt.datetime.now(dt.UTC)).total_seconds()))
    refused = Refused(f"The API key's daily quota of {quota} tasks is used up; it renews at 00:00 UTC", retry)
    if quota <= 0:
        return refused
    taken = _upsert(s, f"quota/{key_id}", 1, midnight.timestamp(), quota)
    return None if taken is not None else refused
