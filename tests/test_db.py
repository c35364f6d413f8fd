"""The project's database on SQLite and on the local PostgreSQL, through the same code."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from eotasks.catalog.ingest import ingest_folder
from eotasks.catalog.scenes import get_scene, list_scenes, scene_assets
from eotasks.db import TaskRecord, create_api_key, find_api_key, get_engine, hash_key, init_db, revoke_api_key, session
from tests.conftest import CROP_DIR

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = PG_URL
        engine = get_engine(url)
        schema = f"t_{uuid.uuid4().hex[:10]}"
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    init_db(url)
    init_db(url)  # safe to run twice
    yield url
    if request.param == "postgresql":
        with get_engine(PG_URL).begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def test_keys_are_stored_hashed_and_revocable(db_url):
    key, record = create_api_key("alice", daily_quota=5, url=db_url)
    assert key.startswith("apk.") and len(key) == 68
    with session(db_url) as s:
        rows = s.exec(text("SELECT key_hash, masked FROM api_keys")).all()
    assert rows == [(hash_key(key), record.masked)] and key not in str(rows)
    assert find_api_key(key, db_url).name == "alice"
    assert revoke_api_key("alice", db_url) == 1
    assert find_api_key(key, db_url).revoked_at is not None


def test_task_ownership_rows(db_url):
    _, k = create_api_key("bob", url=db_url)
    task_id = str(uuid.uuid4())
    with session(db_url) as s:
        s.add(
            TaskRecord(
                id=task_id, api_key_id=k.id, type="bandmath", req_id=str(uuid.uuid4()), idempotency_key="i1", body_hash="h"
            )
        )
        s.commit()
    with session(db_url) as s:
        got = s.get(TaskRecord, task_id)
    assert got.api_key_id == k.id and got.type == "bandmath" and got.idempotency_key == "i1"
    assert got.created_at is not None and got.status is None and got.flow_run_id is None


def test_ingest_real_sample_folder(db_url):
    record = ingest_folder(CROP_DIR, "S2", view_id="S2/18/S/VG/2020/6/15/0", platform="S2A", url=db_url)
    assert record.scene_id == "S2A_tile_20200615_18SVG_0" and record.crs == "EPSG:32618"
    again = get_scene("S2/18/S/VG/2020/6/15/0", db_url)
    assets = scene_assets(again)
    assert set(assets) == {"B01", "B02", "B03", "B04", "B05", "B08", "B11"}
    assert assets["B04"].resolution == 10 and assets["B11"].resolution == 20 and assets["B01"].resolution == 60
    assert assets["B04"].scale == 1e-4 and assets["B04"].offset == 0.0
    assert -75.7 < again.west < again.east < -75.6 and again.date == dt.date(2020, 6, 15)
    # Re-ingesting updates in place.
    ingest_folder(CROP_DIR, "sentinel2", view_id="S2/18/S/VG/2020/6/15/0", url=db_url)
    assert len(list_scenes("sentinel2", db_url)) == 1
    with pytest.raises(ValueError, match="date"):
        ingest_folder(CROP_DIR, "S2", date=dt.date(2020, 1, 1), view_id="S2/18/S/VG/2020/6/15/0", url=db_url)


def test_ingest_derives_the_view_id_from_landsat_and_sentinel2_file_names(tmp_path, sqlite_url):
    import shutil

    product = "LC08_L1TP_014034_20200105_20200115_01_T1"
    landsat = tmp_path / product
    landsat.mkdir()
    shutil.copy(CROP_DIR / "B04.tif", landsat / f"{product}_B4.TIF")
    (landsat / f"{product}_MTL.txt").write_text("GROUP = L1_METADATA_FILE\n")
    record = ingest_folder(landsat, "L8", url=sqlite_url)
    assert record.view_id == f"L8/{product}" and set(record.assets) == {"B4"}
    assert (record.assets["B4"]["scale"], record.assets["B4"]["offset"]) == (2e-5, -0.1)  # Collection 1 TOA
    assert record.metadata_files == {f"{product}_MTL.txt": str(landsat / f"{product}_MTL.txt")}
    s2 = tmp_path / "s2"
    s2.mkdir()
    shutil.copy(CROP_DIR / "B08.tif", s2 / "T18SVG_20200615T155911_B08.tif")
    assert ingest_folder(s2, "sentinel2", url=sqlite_url).view_id == "S2/18/S/VG/2020/6/15/0"
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(CROP_DIR / "B08.tif", empty / "B08.tif")
    with pytest.raises(ValueError, match="--view-id"):
        ingest_folder(empty, "sentinel2", url=sqlite_url)
