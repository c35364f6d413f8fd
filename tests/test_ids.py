import datetime as dt

import pytest

from eotasks.catalog.ids import parse_scene_id, parse_view_id, s2_view_id


def test_sentinel2_view_id_from_spec():
    s = parse_view_id("S2/19/T/CG/2017/7/9/0")
    assert s.sensor.name == "sentinel2" and s.tile == "19TCG" and s.date == dt.date(2017, 7, 9) and s.seq == 0
    assert s.scene_id("S2B") == "S2B_tile_20170709_19TCG_0"
    assert s.mask_kind is None


def test_sentinel2_l2a_and_padded_forms_are_canonicalised():
    s = parse_view_id("S2L2A/09/T/CG/2017/07/09/0")
    assert s.view_id == "S2L2A/9/T/CG/2017/7/9/0" and s.sensor.name == "sentinel2l2a" and s.mask_kind == "SCL"


def test_landsat_pre_collection_id_from_spec():
    s = parse_view_id("L8/LC80290332017076LGN00")
    assert (s.path, s.row) == (29, 33)
    assert s.date == dt.date(2017, 3, 17)  # day 076 of 2017
    assert s.scene_id() == "LC80290332017076LGN00" and s.mask_kind == "BQA_PRE"


def test_landsat_collection_product_id_from_spec():
    s = parse_view_id("L8/LC08_L1TP_041036_20171202_20171207_01_T1")
    assert (s.path, s.row, s.date, s.collection) == (41, 36, dt.date(2017, 12, 2), "01")
    assert s.mask_kind == "BQA_C1"
    s9 = parse_view_id("L9/LC09_L2SP_014034_20220105_20220114_02_T1")
    assert s9.sensor.name == "landsat9" and s9.mask_kind == "QA_PIXEL"


def test_scene_id_round_trip():
    s = parse_scene_id("S2A_tile_20200815_55PDS_0")
    assert s.view_id == "S2/55/P/DS/2020/8/15/0"
    assert s.scene_id("S2A") == "S2A_tile_20200815_55PDS_0"
    assert s2_view_id("55PDS", dt.date(2020, 8, 15), level="L2A") == "S2L2A/55/P/DS/2020/8/15/0"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "S2",
        "S2/19/T/CG/2017/13/9/0",
        "S2/19/T/CG/2017/2/30/0",
        "S2/61/T/CG/2017/7/9/0",
        "S2/19/I/CG/2017/7/9/0",
        "L8/LC80290332017400LGN00",
        "L8/LC90290332017076LGN00",
        "L9/LC08_L1TP_041036_20171202_20171207_01_T1",
        "L8/../../etc/passwd",
        "X/1",
    ],
)
def test_malformed_ids_raise(bad):
    with pytest.raises(ValueError):
        parse_view_id(bad)
