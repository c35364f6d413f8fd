"""An answer's size is known before the task runs: a fields request whose answer would be ~100 GB
held in a worker (6,000 fields, 10 indices, 20 percentiles, a 1,000-bin histogram) is a 400 naming
the parameter that drives it; the same fields with plain statistics are accepted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(sqlite_url, tmp_path, monkeypatch):
    from eotasks.catalog.demo import generate_demo
    from eotasks.settings import reset_settings
    from gateway.app import create_app
    from tests.test_gateway import FakeRuns

    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    generate_demo(tmp_path / "demo", s2_scenes=3, landsat_scenes=0, url=sqlite_url)
    with TestClient(create_app(FakeRuns())) as c:
        yield c
    reset_settings()


def squares(n: int) -> dict:
    """``n`` triangles of ~20 m inside the demo area (every scene covers every one), written compactly."""
    features = []
    for i in range(n):
        x, y = round(-75.454 + (i % 100) * 0.00025, 5), round(37.802 + (i // 100) * 0.00025, 5)
        ring = [[x, y], [round(x + 0.0002, 5), y], [x, round(y + 0.0002, 5)], [x, y]]
        features.append({"type": "Feature", "id": i, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}


def test_an_answer_over_the_cap_is_refused_naming_its_driver(client):
    from eotasks.db import create_api_key

    key = create_api_key("answer-size")[0]
    fields = squares(6000)
    big = {
        "date_start": "2023-01-01",
        "date_end": "2023-12-31",
        "fields": fields,
        "percentiles": list(range(5, 100, 5)),
        "bm_type": ["NDVI", "EVI", "NDWI", "NDMI", "SAVI", "MSAVI", "NBR", "GCI", "NDRE", "RECI"],
        "histogram": {"bins": 1000, "range": [-1, 1]},
    }
    r = client.post("/api", params={"api_key": key}, json={"type": "mt_stats", "params": big})
    assert r.status_code == 400 and r.json()["details"][0]["field"] in ("params.fields", "params.histogram"), r.text
    assert "answer file would be about" in r.json()["error"] and "limit of 256 MB" in r.json()["error"], r.text
    plain = {"date_start": "2023-01-01", "date_end": "2023-12-31", "fields": fields, "bm_type": "NDVI"}
    r = client.post("/api", params={"api_key": key}, json={"type": "mt_stats", "params": plain})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "type"  # accepted; mt_stats itself is faked away here
