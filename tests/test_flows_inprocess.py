"""Flows run in-process against Prefect's test harness: the Dask task runner gives the same
mt_stats answer as the default thread pool."""

from __future__ import annotations

import pytest

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.db import create_api_key, init_db
from eotasks.models import MtStatsParams
from eotasks.settings import reset_settings


@pytest.fixture
def demo_db(tmp_path, monkeypatch):
    monkeypatch.setenv("EOTASKS_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("EOTASKS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    reset_settings()
    init_db()
    generate_demo(tmp_path / "demo", s2_scenes=4, landsat_scenes=3)
    from prefect.testing.utilities import prefect_test_harness

    # The harness starts and stops its server inside this fixture (not at interpreter exit).
    with prefect_test_harness(server_startup_timeout=120):
        yield create_api_key("inprocess")[1].id
    reset_settings()


def test_dask_task_runner_gives_the_thread_pool_answer(demo_db, monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows._common import time_series_runner
    from flows.mt_stats import mt_stats

    params = MtStatsParams(
        date_start="2023-01-01",
        date_end="2023-12-31",
        bm_type=["NDVI", "EVI"],
        geometry=demo_fields()[0]["geometry"],
        sensors=["sentinel2l2a", "landsat8"],
    )
    threads = mt_stats(task_id="00000000-0000-4000-8000-000000000001", api_key_id=demo_db, params=params)
    monkeypatch.setenv("EOTASKS_DASK_ADDRESS", "local")
    reset_settings()
    runner = time_series_runner()
    assert isinstance(runner, DaskTaskRunner)
    dask = mt_stats.with_options(task_runner=runner)(
        task_id="00000000-0000-4000-8000-000000000002", api_key_id=demo_db, params=params
    )
    assert len(threads["result"]) == 7 and threads["errors"] == []
    assert dask == threads
