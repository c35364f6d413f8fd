"""Settings from ``EOTASKS_*`` environment variables (and a ``.env`` file if present)."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EOTASKS_", env_file=".env", extra="ignore")

    # Where the embedded default keeps everything it writes (database, results, Prefect home).
    data_dir: Path = Path(".eotasks")

    # The project's own database: API keys, task ownership, scene catalogue, cropper geometries.
    # Default: SQLite under data_dir. Production: postgresql+psycopg://user@host/db
    database_url: str | None = None

    # Result store: a local folder (default: data_dir/results) or s3://bucket/prefix.
    store_url: str | None = None
    # A saved prefect-aws S3Bucket block name; when set it wins over store_url (issue #5 topology).
    store_block: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # Scene assets on S3 (s3:// hrefs in the catalogue), read in place by windows through GDAL.
    assets_s3_endpoint_url: str | None = None  # default: s3_endpoint_url
    assets_requester_pays: bool = False
    # "auto": sign with boto's credential chain, unsigned only when it has none; "true": always
    # unsigned (public buckets); "false": always signed.
    assets_unsigned: str = "auto"
    # A saved prefect-aws AwsCredentials block for the assets; otherwise the usual AWS_* variables.
    assets_credentials_block: str | None = None
    # Signed download URLs live this long.
    download_url_ttl_s: int = 3600
    # HMAC secret for gateway-signed download URLs; generated into data_dir when unset.
    signing_secret: SecretStr | None = None

    # Gateway.
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None  # how clients reach the gateway (default http://host:port)
    max_body_bytes: int = 1_000_000
    rate_limit_per_minute: int = 120
    # Where every gateway process counts requests (eotasks/usage.py): this Redis when set
    # (redis://host:6379/0), else our database.
    redis_url: str | None = None
    callback_allow_private: bool = False
    callback_deadline_s: float = 10.0  # one attempt, all of it: connect, send, status line and headers
    callback_retries: int = 4  # attempts in all (10 s, 30 s, 90 s apart), then the callback is given up
    callback_backoff_s: float = 10.0  # the first wait; each next one is three times longer

    # Prefect.
    prefect_port: int = 4200
    # Flow runs the embedded default's warm worker runs at once (`prefect worker start --limit` in production).
    serve_limit: int = 4
    # The warm worker's fallback poll for scheduled runs; the event stream normally wakes it at once.
    worker_poll_s: float = 2.0
    work_pool: str = "eotasks"
    # Recovery (eotasks/recovery.py): a PENDING run no process started after this long, or a RUNNING
    # run without a heartbeat for this long, is resubmitted up to max_resubmits times, then failed.
    stale_pending_s: int = 60
    stale_heartbeat_s: int = 100  # > 3 beats at PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30
    max_resubmits: int = 2
    deployment_suffix: str = "eotasks"  # deployments are "<flow>/<suffix>"

    # Request limits.
    max_aoi_km2: float = 10_000.0
    # Vertices of one AOI (or field) as sent, and once its edges are densified to 0.001 degrees for
    # reprojection (a 10,000 km2 square has ~5,000); the fields of one request in all, densified.
    max_aoi_vertices: int = 20_000
    max_densified_vertices: int = 250_000
    max_fields_densified_vertices: int = 2_000_000
    max_expression_chars: int = 2_000
    max_expressions: int = 10
    max_output_pixels: int = 50_000_000
    # Pixels x bands a task may read from one scene (its read windows, counted before any read).
    # A full Sentinel-2 tile's NDVI (two 10 m bands) is ~241 M.
    max_read_pixels: int = 300_000_000
    # Memory one run may hold (bands read, outputs, pictures, the values fields keep for their
    # statistics), estimated before any read; the answer of mt_stats, as a file and as inline JSON.
    max_task_memory_mb: int = 4096
    max_answer_mb: int = 256
    max_inline_answer_mb: int = 32
    mt_stats_max_days: int = 365
    mt_stats_max_bm_types: int = 10
    max_fields: int = 10_000  # features in one mt_stats "fields" request
    # Per-scene branches of mt_stats run on this many threads (rasterio and numpy release the GIL).
    mt_stats_workers: int = 4
    # A Dask scheduler address (tcp://host:8786): mt_stats fans out over that cluster instead.
    dask_address: str | None = None
    task_timeout_s: int = 172_800

    # openEO (SPEC §8): values (pixels x dates x bands) one load_collection may read in a synchronous
    # request and in a batch job, and how long POST /result waits for its run.
    openeo_sync_max_values: int = 25_000_000
    openeo_batch_max_values: int = 250_000_000
    openeo_sync_timeout_s: float = 300.0
    openeo_token_ttl_s: int = 86_400
    # A batch job over a larger extent runs in spatial chunks of about this many values each.
    openeo_chunk_values: int = 1 << 24

    # Steps.
    io_retries: int = 3

    demo_key_name: str = "demo"

    # Cached: a request's path (database URL, signing) asks for these, and each resolve is syscalls.
    @functools.cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @functools.cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'eotasks.db'}"

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or str(self.resolved_data_dir / "results")

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @functools.cached_property
    def resolved_signing_secret(self) -> str:
        if self.signing_secret:
            return self.signing_secret.get_secret_value()
        # One secret per data_dir, shared by the gateway and the flows that sign URLs for callbacks.
        path = self.resolved_data_dir / "signing.secret"
        if not path.exists():
            _create_secret_file(path)
        return path.read_text().strip()


def _create_secret_file(path: Path) -> None:
    """Write a new secret readable by its owner only (0600 from the start), atomically: a private
    temporary file in the same folder, then a hard link to the final name, which fails if another
    process won the race (its secret is kept and read by everyone)."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)  # mode 0600, a name nobody else has
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


@functools.lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
