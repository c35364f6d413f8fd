"""mt_stats' per-scene work and the catalogue search, without Prefect, against independent numpy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from shapely.geometry import shape

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.search import search_scenes
from eotasks.errors import SceneSkipped
from eotasks.raster import cloudmask
from eotasks.stats_answer import TimeSeriesAnswer
from eotasks.timeseries import Field, StatsOptions, scene_statistics
from tests.reference import aoi_statistics, independent_scene_stats, numpy_stats

FIELD = demo_fields()[0]["geometry"]
FIELD_LONLAT = FIELD["coordinates"][0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{root / 'db.sqlite'}"
    from eotasks.db import init_db

    init_db(url)
    records = generate_demo(root / "files", s2_scenes=6, landsat_scenes=4, url=url)
    return url, records


def test_scl_levels():
    scl = np.arange(12)
    assert list(scl[cloudmask.flagged("SCL", scl, 1)]) == [9]
    assert list(scl[cloudmask.flagged("SCL", scl, 2)]) == [8, 9]
    assert list(scl[cloudmask.flagged("SCL", scl, 3)]) == [3, 7, 8, 9, 10]
    assert list(scl[cloudmask.flagged("SCL", scl, 4)]) == [8, 9, 10]
    assert list(cloudmask.usable("SCL", scl)) == [False, False] + [True] * 10


@pytest.mark.parametrize(
    "kind, bits, level, expected",
    [
        # Collection 2 QA_PIXEL: confidence bits 8-9, dilated 1, cirrus 2, shadow 4
        ("QA_PIXEL", 3 << 8, 1, True),
        ("QA_PIXEL", 2 << 8, 1, False),
        ("QA_PIXEL", 2 << 8, 2, True),
        ("QA_PIXEL", 1 << 8, 2, False),
        ("QA_PIXEL", (1 << 8) | (1 << 2), 3, True),
        ("QA_PIXEL", (1 << 8) | (1 << 4), 3, True),
        ("QA_PIXEL", (1 << 8) | (1 << 1), 3, True),
        ("QA_PIXEL", (1 << 8) | (1 << 4), 4, False),
        ("QA_PIXEL", (1 << 8) | (1 << 2), 4, True),
        # Collection 1 BQA: cloud confidence 5-6, shadow confidence 7-8, cirrus confidence 11-12
        ("BQA_C1", 3 << 5, 1, True),
        ("BQA_C1", 2 << 5, 1, False),
        ("BQA_C1", 2 << 5, 2, True),
        ("BQA_C1", 3 << 7, 3, True),
        ("BQA_C1", 3 << 7, 4, False),
        ("BQA_C1", 3 << 11, 4, True),
        ("BQA_C1", 1 << 11, 4, False),
        # pre-collection BQA: cloud confidence 14-15, cirrus confidence 12-13
        ("BQA_PRE", 3 << 14, 1, True),
        ("BQA_PRE", 2 << 14, 1, False),
        ("BQA_PRE", 2 << 14, 2, True),
        ("BQA_PRE", 3 << 12, 2, False),
        ("BQA_PRE", 3 << 12, 3, True),
        ("BQA_PRE", 2 << 12, 4, True),
        ("BQA_PRE", 1 << 12, 4, False),
    ],
)
def test_landsat_bit_layouts(kind, bits, level, expected):
    assert bool(cloudmask.flagged(kind, np.array([bits], np.uint16), level)[0]) is expected


@pytest.mark.parametrize("expression", ["NDVI", "EVI"])
def test_scene_statistics_equal_an_independent_numpy_computation(demo, expression):
    _, records = demo
    checked_cloudy = 0
    for record in records:
        cloud, values = independent_scene_stats(record, expression, FIELD_LONLAT)
        item = aoi_statistics(record, [expression], shape(FIELD), StatsOptions())
        assert item["cloud"] == pytest.approx(cloud, rel=1e-12, abs=1e-12)
        for key, want in numpy_stats(values).items():
            assert item["indexes"][expression][key] == pytest.approx(want, rel=1e-9), (record.view_id, key)
        checked_cloudy += cloud > 0
    assert checked_cloudy >= 1  # the masks were exercised


def test_cloud_threshold_and_including_cover_pixels(demo):
    _, records = demo
    cloudy = max(records, key=lambda r: independent_scene_stats(r, "NDVI", FIELD_LONLAT)[0])
    cloud, _ = independent_scene_stats(cloudy, "NDVI", FIELD_LONLAT)
    assert cloud > 0
    with pytest.raises(SceneSkipped, match="above max_cloud_cover_in_aoi"):
        aoi_statistics(cloudy, ["NDVI"], shape(FIELD), StatsOptions(max_cloud_cover_in_aoi=cloud / 2))
    _, all_values = independent_scene_stats(cloudy, "NDVI", FIELD_LONLAT, exclude_cover_pixels=False)
    item = aoi_statistics(cloudy, ["NDVI"], shape(FIELD), StatsOptions(exclude_cover_pixels=False))
    assert item["indexes"]["NDVI"]["average"] == pytest.approx(all_values.mean(), rel=1e-9)


def test_answer_shapes_flat_for_a_string_and_indexes_for_a_list(demo):
    _, records = demo
    outcomes = [scene_statistics(r, ["NDVI"], [Field(None, shape(FIELD))], StatsOptions()) for r in records[:3]]

    def answer(bm_type):
        built = TimeSeriesAnswer(bm_type, {None: 0})
        for outcome in reversed(outcomes):
            built.add(outcome)
        return built.as_dict()

    flat = answer("NDVI")
    assert [r["date"] for r in flat["result"]] == sorted(r["date"] for r in flat["result"])
    assert set(flat["result"][0]) == {
        "q1",
        "q3",
        "min",
        "p90",
        "max",
        "average",
        "median",
        "p10",
        "date",
        "scene_id",
        "variance",
        "cloud",
        "std",
        "view_id",
    }
    listed = answer(["NDVI"])
    assert set(listed["result"][0]["indexes"]) == {"NDVI"}


def test_search_sensors_dates_aoi_order_and_paging(demo):
    url, records = demo
    field = shape(FIELD)
    _everything, found = search_scenes(url=url)
    assert found == len(records) == 10
    s2, found = search_scenes(["sentinel2l2a"], url=url)
    assert found == 6 and all(r.sensor == "sentinel2l2a" for r in s2)
    assert [r.date for r in s2] == sorted((r.date for r in s2), reverse=True)  # newest first
    first = min(r.date for r in records)
    exact, found = search_scenes(dates=[(first, first)], url=url)
    assert found == 1 and exact[0].date == first  # inclusive on both ends
    page2, found = search_scenes(aoi=field, offset=3, limit=3, newest_first=False, url=url)
    assert (
        found == 10 and [r.view_id for r in page2] == [r.view_id for r in sorted(records, key=lambda r: (r.date, r.view_id))][3:6]
    )
    far = shape({"type": "Polygon", "coordinates": [[[10, 10], [10.1, 10], [10.1, 10.1], [10, 10]]]})
    assert search_scenes(aoi=far, url=url)[1] == 0
    assert search_scenes(dates=[(dt.date(2030, 1, 1), None)], url=url)[1] == 0
