"""The project's own database (SQLModel): API keys, task ownership, the scene catalogue, croppers.

SQLite by default; any SQLAlchemy URL works (``postgresql+psycopg://...`` in production).
``init_db`` creates missing tables and is safe to run any number of times.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

from eotasks.settings import get_settings

KEY_PREFIX = "apk."


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    key_hash: str = Field(unique=True, index=True)  # sha256 hex of the whole key; the key is never stored
    masked: str  # "apk.1a2b…9f0e": shown back to clients as "token"
    created_at: dt.datetime = Field(default_factory=utcnow)
    revoked_at: dt.datetime | None = None
    daily_quota: int | None = None  # tasks per UTC day; None = unlimited


class TaskRecord(SQLModel, table=True):
    __tablename__ = "tasks"
    # One task per (key, Idempotency-Key): the row is reserved before the run is created, so two
    # concurrent POSTs with one key cannot both create a task (NULL keys do not collide).
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key", name="uq_tasks_key_idempotency"),)
    id: str = Field(primary_key=True)  # the task_id (UUID4) clients see
    flow_run_id: str | None = Field(default=None, index=True)
    api_key_id: int = Field(foreign_key="api_keys.id", index=True)
    type: str
    reference: str | None = None
    req_id: str
    idempotency_key: str | None = Field(default=None, index=True)
    body_hash: str | None = None
    callback_url: str | None = None
    # What the run has reached, written by the run itself (eotasks.outcomes) as it goes: its stage
    # (the step running, or the one a failed run failed at: Prefect records task runs from events a
    # moment later, and a GET right after the failure must not name an earlier step), and once it
    # has ended its status (finished, failed, cancelled), the client's error sentence and the
    # result's files. An ended task is answered from here alone; it never changes again.
    stage: str | None = None
    status: str | None = Field(default=None, index=True)  # None (queued), started, finished, failed, cancelled
    error: str | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # {"files": [...]} or {"answer": key}
    updated_at: dt.datetime = Field(default_factory=utcnow)
    ended_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)


class OpenEOJob(SQLModel, table=True):
    """An openEO batch job (SPEC §8): its process and metadata; once started, the task that runs it
    (its status, files and recovery are the task's, ``task_id``)."""

    __tablename__ = "openeo_jobs"
    id: str = Field(primary_key=True)
    api_key_id: int = Field(foreign_key="api_keys.id", index=True)
    title: str | None = None
    description: str | None = None
    process: dict[str, Any] = Field(sa_column=Column(JSON))  # {"process_graph": ...} as validated and rebuilt
    plan: str | None = None
    budget: float | None = None
    task_id: str | None = Field(default=None, index=True)  # the latest run's task, once started
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class SceneRecord(SQLModel, table=True):
    __tablename__ = "scenes"
    view_id: str = Field(primary_key=True)
    scene_id: str = Field(index=True)
    sensor: str = Field(index=True)
    date: dt.date = Field(index=True)
    cloud_cover: float = 0.0
    crs: str
    # GeoJSON polygon in EPSG:4326, and its bounds for a cheap pre-filter in searches: the bounds are
    # derived from the footprint by upsert_scene, so the two can never disagree.
    footprint: dict[str, Any] = Field(sa_column=Column(JSON))
    west: float = 0.0
    south: float = 0.0
    east: float = 0.0
    north: float = 0.0
    # band -> {"href", "resolution", "scale", "offset", "nodata", "spectral"}
    assets: dict[str, Any] = Field(sa_column=Column(JSON))
    mask_band: str | None = None
    # metadata file name -> href (MTL text, tile metadata JSON ...)
    metadata_files: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    ingested_at: dt.datetime = Field(default_factory=utcnow)


class CallbackRecord(SQLModel, table=True):
    """The callback outbox: one row per task with a callback_url, written when the task ends, sent
    (and retried) by the gateway's sender (eotasks/callbacks.py)."""

    __tablename__ = "callbacks"
    id: str = Field(primary_key=True)
    task_id: str = Field(unique=True, index=True)
    url: str
    body: dict[str, Any] = Field(sa_column=Column(JSON))
    created_at: dt.datetime = Field(default_factory=utcnow)
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, index=True)  # also the lease while sending
    done_at: dt.datetime | None = Field(default=None, index=True)
    outcome: str | None = None  # "delivered" or "gave up"
    last_result: str | None = None


class UsageCounter(SQLModel, table=True):
    """A counter with an expiry: a key's requests this minute, its tasks today (eotasks/usage.py)."""

    __tablename__ = "usage_counters"
    key: str = Field(primary_key=True)
    count: int = 0
    expires_at: float = 0.0  # seconds since the epoch


class CropperRecord(SQLModel, table=True):
    __tablename__ = "croppers"
    id: str = Field(primary_key=True)  # 32 hex: a hash of the canonical geometry
    geometry: dict[str, Any] = Field(sa_column=Column(JSON))
    created_at: dt.datetime = Field(default_factory=utcnow)


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets the gateway read while a flow writes; foreign keys as on PostgreSQL.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives any
            # crash of a process (only a power cut can lose the last ones). Every request counts
            # against its key's rate limit here, and a sync per request capped a gateway at ~100/s.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    return _engine(url or get_settings().resolved_database_url)


def init_db(url: str | None = None) -> Engine:
    engine = get_engine(url)
    SQLModel.metadata.create_all(engine)
    # Databases created before a column or constraint existed get it here.
    from sqlalchemy import inspect

    have = {c["name"] for c in inspect(engine).get_columns("tasks")}
    added = {
        "stage": "VARCHAR",
        "status": "VARCHAR",
        "error": "VARCHAR",
        "result": "JSON",
        "updated_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP",
    }
    for column, kind in added.items():
        if column not in have:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE tasks ADD COLUMN {column} {kind}"))
    with engine.begin() as conn:
        conn.execute(
            text("CREATE UNIQUE INDEX IF NOT EXISTS uq_tasks_key_idempotency_idx ON tasks (api_key_id, idempotency_key)")
        )
    return engine


def session(url: str | None = None) -> Session:
    return Session(get_engine(url), expire_on_commit=False)


# --- API keys -------------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def mask_key(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}"


def create_api_key(name: str, daily_quota: int | None = None, url: str | None = None) -> tuple[str, ApiKey]:
    """Create a key; the plain key is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_hex(32)
    record = ApiKey(name=name, key_hash=hash_key(key), masked=mask_key(key), daily_quota=daily_quota)
    with session(url) as s:
        s.add(record)
        s.commit()
        s.refresh(record)
    return key, record


def find_api_key(key: str, url: str | None = None) -> ApiKey | None:
    with session(url) as s:
        return s.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()


def revoke_api_key(name_or_masked: str, url: str | None = None) -> int:
    """Revoke every active key with that name (or that exact masked form, or key); returns how many."""
    with session(url) as s:
        rows = s.exec(select(ApiKey).where(ApiKey.revoked_at.is_(None))).all()  # type: ignore[union-attr]
        hit = [k for k in rows if name_or_masked in (k.name, k.masked) or k.key_hash == hash_key(name_or_masked)]
        for k in hit:
            k.revoked_at = utcnow()
            s.add(k)
        s.commit()
        return len(hit)
