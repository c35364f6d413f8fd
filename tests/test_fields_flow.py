"""The fields request end to end in process: one flow run, the answer as a file (JSON and CSV), ids
as sent, a field outside every scene in errors, the operator's summary artifacts."""

from __future__ import annotations

import csv
import io
import json

import pytest
from prefect.testing.utilities import prefect_test_harness

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.models import MtStatsParams


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def demo_db(tmp_path, monkeypatch):
    from eotasks.db import create_api_key, init_db
    from eotasks.settings import reset_settings

    monkeypatch.setenv("EOTASKS_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("EOTASKS_STORE_URL", str(tmp_path / "results"))
    reset_settings()
    init_db()
    generate_demo(tmp_path / "demo", s2_scenes=3, landsat_scenes=2)
    _, key = create_api_key("fields-flow")
    yield key.id, tmp_path
    reset_settings()


def collection(extra_far: bool = True) -> dict:
    features = []
    for i, f in enumerate(demo_fields()[:6]):
        fid = f"parcel-{i}" if i % 2 else 1000 + i  # strings and numbers, kept as sent
        features.append({"type": "Feature", "id": fid, "properties": {}, "geometry": f["geometry"]})
    if extra_far:
        features.append(
            {
                "type": "Feature",
                "properties": {"id": "far away"},
                "geometry": {"type": "Polygon", "coordinates": [[[10, 50], [10.01, 50], [10.01, 50.01], [10, 50.01], [10, 50]]]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def test_a_fields_request_is_one_run_answered_by_files(harness, demo_db):
    from flows.mt_stats import mt_stats

    key_id, root = demo_db
    common = dict(
        date_start="2023-01-01",
        date_end="2023-12-31",
        bm_type="NDVI",
        fields=collection(),
        coverage="exact",
        percentiles=[5, 95],
        histogram={"bins": 8, "range": [-0.2, 1.0]},
        sensors=["sentinel2l2a", "landsat8"],
    )
    out = mt_stats(task_id="00000000-0000-4000-8000-00000000f001", api_key_id=key_id, params=MtStatsParams(**common))
    [json_key] = out["files"]
    answer = json.loads((root / "results" / json_key).read_bytes())
    ids = [f["id"] if "id" in f else f["properties"]["id"] for f in collection()["features"]]
    seen = [r["field_id"] for r in answer["result"]]
    assert set(seen) == set(ids[:-1]) and seen == sorted(seen, key=ids.index)  # by field as sent, then date
    for fid in set(seen):
        dates = [r["date"] for r in answer["result"] if r["field_id"] == fid]
        assert dates == sorted(dates) and len(dates) == 5
    assert {e["field_id"] for e in answer["errors"]} >= {"far away"}
    first = answer["result"][0]
    assert isinstance(first["field_id"], int) and {"count", "nodata_count", "percentiles", "histogram", "average"} <= set(first)
    h = first["histogram"]
    assert sum(h["counts"]) + h["underflow"] + h["overflow"] == pytest.approx(first["count"])

    out = mt_stats(
        task_id="00000000-0000-4000-8000-00000000f002",
        api_key_id=key_id,
        params=MtStatsParams(**{**common, "output_format": "csv"}),
    )
    [csv_key] = out["files"]
    assert csv_key.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO((root / "results" / csv_key).read_text())))
    results = [r for r in rows if not r["error"]]
    assert len(results) == len(answer["result"])  # one row per field, scene and index
    assert float(results[0]["average"]) == pytest.approx(answer["result"][0]["average"])
    assert float(results[0]["p_95"]) == pytest.approx(answer["result"][0]["percentiles"]["95"])
    assert any(r["field_id"] == "far away" and r["error"] for r in rows)


def test_a_single_aoi_request_without_new_parameters_answers_as_before(harness, demo_db):
    from flows.mt_stats import mt_stats

    key_id, _ = demo_db
    field = demo_fields()[0]["geometry"]
    params = MtStatsParams(
        date_start="2023-01-01", date_end="2023-12-31", bm_type="NDVI", geometry=field, sensors=["sentinel2l2a"]
    )
    plain = mt_stats(task_id="00000000-0000-4000-8000-00000000f003", api_key_id=key_id, params=params)
    assert "count" not in plain["result"][0] and "field_id" not in plain["result"][0]
    richer = mt_stats(
        task_id="00000000-0000-4000-8000-00000000f004",
        api_key_id=key_id,
        params=MtStatsParams(**{**params.model_dump(exclude_none=True), "percentiles": [50]}),
    )
    assert len(plain["result"]) == len(richer["result"]) == 3  # the loop below compares every scene
    for a, b in zip(plain["result"], richer["result"], strict=False):
        assert b["median"] == pytest.approx(a["median"], rel=1e-12) and b["percentiles"]["50"] == pytest.approx(
            a["median"], rel=1e-12
        )
        assert b["average"] == pytest.approx(a["average"], rel=1e-12) and "field_id" not in b and isinstance(b["count"], int)


def test_a_monitoring_job_watches_a_feature_collection(harness, demo_db):
    import datetime as dt

    from flows.monitor import monitor

    _key_id, root = demo_db
    out = monitor(
        name="six parcels",
        bm_type="NDVI",
        fields=collection(extra_far=False),
        sensors=["sentinel2l2a"],
        days=364,
        end_date=dt.date(2023, 12, 31),
    )
    kept = json.loads((root / "results" / out["key"]).read_bytes())
    assert out["key"].startswith("monitoring/six_parcels/") and kept["params"]["fields"]["type"] == "FeatureCollection"
    assert {r["field_id"] for r in kept["result"]} == {f["id"] for f in collection(extra_far=False)["features"]}
