"""Products scaled as they were made: Sentinel-2 baselines, Landsat Collection 2 Level-1 and Level-2
(surface temperature in kelvin), Earth Search asset keys. Each against numbers written by hand from
the product definitions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine

from eotasks.catalog.ingest import ingest_folder
from eotasks.catalog.scenes import scene_assets
from eotasks.catalog.stac import record_from_item
from eotasks.raster.indices import compile_expressions
from eotasks.raster.read import read_aoi
from eotasks.sensors import SENSORS

CRS = "EPSG:32618"
T = Affine(10, 0, 440000, 0, -10, 4170000)


def write_bands(folder, names_values: dict[str, int], res: float = 10.0, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in names_values.items():
        profile = {
            "driver": "GTiff",
            "width": 8,
            "height": 8,
            "count": 1,
            "dtype": "uint16",
            "crs": CRS,
            "transform": Affine(res, 0, 440000, 0, -res, 4170000),
        }
        with rasterio.open(folder / f"{prefix}{name}.TIF", "w", **profile) as dst:
            dst.write(np.full((8, 8), value, np.uint16), 1)


def ndvi_of(record) -> float:
    [program] = compile_expressions("NDVI", SENSORS[record.sensor])
    values = read_aoi(scene_assets(record), list(program.bands), None, mask_outside=False).evaluate([program]).values[0]
    assert np.isfinite(values).all()
    return float(values[0, 0])


MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>
 <Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
 </QUANTIFICATION_VALUES_LIST>{offsets}</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>"""
OFFSETS = (
    "<BOA_ADD_OFFSET_VALUES_LIST>"
    + "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    + "</BOA_ADD_OFFSET_VALUES_LIST>"
)


@pytest.mark.parametrize(
    ("how", "date", "metadata", "expected"),
    [
        # N = 3000, R = 1000 DN. Before baseline 04.00 there is no offset: (0.3 - 0.1) / (0.3 + 0.1) = 0.5.
        ("metadata 02.09", dt.date(2021, 6, 1), MTD.format(baseline="02.09", offsets=""), 0.5),
        (
            "metadata 04.00",
            dt.date(2021, 6, 1),
            MTD.format(baseline="04.00", offsets=OFFSETS),
            1.0,
        ),  # reprocessed: (0.2 - 0) / 0.2
        ("metadata 05.09", dt.date(2023, 6, 1), MTD.format(baseline="05.09", offsets=OFFSETS), 1.0),
        ("date before 25 Jan 2022", dt.date(2021, 6, 1), None, 0.5),
        ("date after", dt.date(2022, 6, 1), None, 1.0),
    ],
)
def test_sentinel2_l2a_offset_follows_the_processing_baseline(tmp_path, sqlite_url, how, date, metadata, expected):
    folder = tmp_path / "scene"
    write_bands(folder, {"B04": 1000, "B08": 3000})
    if metadata:
        (folder / "MTD_MSIL2A.xml").write_text(metadata)
    record = ingest_folder(folder, "sentinel2l2a", view_id=f"S2L2A/18/S/VG/{date.year}/{date.month}/{date.day}/0", url=sqlite_url)
    red, nir = 1000 * record.assets["B04"]["scale"] + record.assets["B04"]["offset"], 3000 * 1e-4 + record.assets["B08"]["offset"]
    assert ndvi_of(record) == pytest.approx(expected, abs=1e-12)
    assert ndvi_of(record) == pytest.approx((nir - red) / (nir + red), abs=1e-12)


MTL_L1 = """GROUP = LANDSAT_METADATA_FILE
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
    RADIANCE_MULT_BAND_10 = 3.3420E-04
    RADIANCE_ADD_BAND_10 = 0.10000
    REFLECTANCE_MULT_BAND_4 = 2.0000E-05
    REFLECTANCE_ADD_BAND_4 = -0.100000
    REFLECTANCE_MULT_BAND_5 = 2.0000E-05
    REFLECTANCE_ADD_BAND_5 = -0.100000
  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
  GROUP = LEVEL1_THERMAL_CONSTANTS
    K1_CONSTANT_BAND_10 = 774.8853
    K2_CONSTANT_BAND_10 = 1321.0789
  END_GROUP = LEVEL1_THERMAL_CONSTANTS
END_GROUP = LANDSAT_METADATA_FILE
END
"""
L1_ID = "LC08_L1TP_014034_20230615_20230622_02_T1"
L2_ID = "LC08_L2SP_014034_20230615_20230622_02_T1"


@pytest.mark.parametrize("with_mtl", [True, False])
def test_landsat_c2_level1_is_toa_reflectance(tmp_path, sqlite_url, with_mtl):
    folder = tmp_path / "l1"
    write_bands(folder, {"B4": 10000, "B5": 30000, "B10": 20000}, res=30.0, prefix=f"{L1_ID}_")
    if with_mtl:
        (folder / f"{L1_ID}_MTL.txt").write_text(MTL_L1)
    record = ingest_folder(folder, "landsat8", view_id=f"L8/{L1_ID}", url=sqlite_url)
    assert (record.assets["B4"]["scale"], record.assets["B4"]["offset"]) == (2e-5, -0.1)  # not Level-2's 2.75e-5, -0.2
    red, nir = 10000 * 2e-5 - 0.1, 30000 * 2e-5 - 0.1
    assert ndvi_of(record) == pytest.approx((nir - red) / (nir + red), abs=1e-12)
    if with_mtl:
        assert record.assets["B10"]["unit"] == "radiance" and record.assets["B10"]["constants"] == {
            "K1": 774.8853,
            "K2": 1321.0789,
        }
        assert (record.assets["B10"]["scale"], record.assets["B10"]["offset"]) == (3.342e-4, 0.1)


def test_landsat_c2_level2_surface_temperature_is_kelvin(tmp_path, sqlite_url):
    folder = tmp_path / "l2"
    write_bands(folder, {"SR_B4": 10000, "SR_B5": 30000, "ST_B10": 44000}, res=30.0, prefix=f"{L2_ID}_")
    record = ingest_folder(folder, "landsat8", view_id=f"L8/{L2_ID}", url=sqlite_url)
    st = record.assets["B10"]
    assert st["unit"] == "kelvin" and (st["scale"], st["offset"]) == (0.00341802, 149.0)
    [program] = compile_expressions("B10", SENSORS["landsat8"])
    values = read_aoi(scene_assets(record), ["B10"], None, mask_outside=False).evaluate([program]).values[0]
    assert values[0, 0] == pytest.approx(44000 * 0.00341802 + 149.0)  # 299.39 K, not a reflectance
    red, nir = 10000 * 2.75e-5 - 0.2, 30000 * 2.75e-5 - 0.2
    assert ndvi_of(record) == pytest.approx((nir - red) / (nir + red), abs=1e-12)


def test_earth_search_landsat_c2_l2_qa_pixel_is_the_mask_and_qa_is_not():
    def asset(href, scale=None, offset=None, unit=None):
        bands = {k: v for k, v in {"scale": scale, "offset": offset, "unit": unit, "nodata": 0}.items() if v is not None}
        return pystac.Asset(href, extra_fields={"raster:bands": [bands]})

    item = pystac.Item(
        L2_ID,
        {"type": "Polygon", "coordinates": [[[-76, 37], [-75, 37], [-75, 38], [-76, 38], [-76, 37]]]},
        None,
        dt.datetime(2023, 6, 15, 15, 50, tzinfo=dt.UTC),
        {"platform": "landsat-8", "proj:code": CRS},
        collection="landsat-c2-l2",
    )
    item.add_asset("red", asset("s3://b/red.TIF", 2.75e-5, -0.2))
    item.add_asset("lwir11", asset("s3://b/lwir11.TIF", 0.00341802, 149.0, "kelvin"))
    item.add_asset("qa_pixel", asset("s3://b/qa_pixel.TIF"))
    item.add_asset("qa", asset("s3://b/qa.TIF", 0.01))  # ST_QA: the temperature's uncertainty
    record = record_from_item(item)
    assert record.mask_band == "QA_PIXEL" and record.assets["QA_PIXEL"]["href"] == "s3://b/qa_pixel.TIF"
    assert "BQA" not in record.assets and all("qa.TIF" not in a["href"] for a in record.assets.values())
    assert record.assets["B10"]["unit"] == "kelvin"


def test_catalog_ls_shows_each_bands_scaling(tmp_path, sqlite_url, monkeypatch, capsys):
    from eotasks.cli import main
    from eotasks.settings import reset_settings

    folder = tmp_path / "l2"
    write_bands(folder, {"SR_B4": 10000, "ST_B10": 44000}, res=30.0, prefix=f"{L2_ID}_")
    ingest_folder(folder, "landsat8", view_id=f"L8/{L2_ID}", url=sqlite_url)
    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    try:
        assert main(["catalog", "ls", "--bands"]) == 0
    finally:
        reset_settings()
    out = capsys.readouterr().out
    assert "B10" in out and "value = DN x 0.00341802 + 149  (kelvin)" in out
    assert "value = DN x 2.75e-05 + -0.2  (reflectance)" in out


# The layout of a real Collection 2 Level-2 MTL (LC08_L2SP_..._MTL.txt, abridged to the groups that
# carry factors, in the order USGS writes them): the Level-2 groups come first, and the Level-1
# product it was made from is described further down with the same key names and other values.
MTL_L2 = """GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    ORIGIN = "Image courtesy of the U.S. Geological Survey"
    LANDSAT_PRODUCT_ID = "LC08_L2SP_014034_20230615_20230622_02_T1"
    PROCESSING_LEVEL = "L2SP"
    COLLECTION_NUMBER = 02
    FILE_NAME_BAND_4 = "LC08_L2SP_014034_20230615_20230622_02_T1_SR_B4.TIF"
    FILE_NAME_BAND_5 = "LC08_L2SP_014034_20230615_20230622_02_T1_SR_B5.TIF"
    FILE_NAME_BAND_ST_B10 = "LC08_L2SP_014034_20230615_20230622_02_T1_ST_B10.TIF"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
    REFLECTANCE_MAXIMUM_BAND_4 = 1.602213
    REFLECTANCE_MINIMUM_BAND_4 = -0.199972
    QUANTIZE_CAL_MAX_BAND_4 = 65535
    QUANTIZE_CAL_MIN_BAND_4 = 1
    REFLECTANCE_MULT_BAND_4 = 2.75e-05
    REFLECTANCE_MULT_BAND_5 = 2.75e-05
    REFLECTANCE_ADD_BAND_4 = -0.2
    REFLECTANCE_ADD_BAND_5 = -0.2
  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS
    TEMPERATURE_MAXIMUM_BAND_ST_B10 = 372.999941
    TEMPERATURE_MINIMUM_BAND_ST_B10 = 149.003418
    TEMPERATURE_MULT_BAND_ST_B10 = 0.00341802
    TEMPERATURE_ADD_BAND_ST_B10 = 149.0
  END_GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS
  GROUP = LEVEL1_PROCESSING_RECORD
    LANDSAT_PRODUCT_ID = "LC08_L1TP_014034_20230615_20230622_02_T1"
    PROCESSING_LEVEL = "L1TP"
  END_GROUP = LEVEL1_PROCESSING_RECORD
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
    RADIANCE_MULT_BAND_4 = 9.8436E-03
    RADIANCE_MULT_BAND_10 = 3.3420E-04
    RADIANCE_ADD_BAND_4 = -49.21810
    RADIANCE_ADD_BAND_10 = 0.10000
    REFLECTANCE_MULT_BAND_4 = 2.0000E-05
    REFLECTANCE_MULT_BAND_5 = 2.0000E-05
    REFLECTANCE_ADD_BAND_4 = -0.100000
    REFLECTANCE_ADD_BAND_5 = -0.100000
  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
  GROUP = LEVEL1_THERMAL_CONSTANTS
    K1_CONSTANT_BAND_10 = 774.8853
    K2_CONSTANT_BAND_10 = 1321.0789
  END_GROUP = LEVEL1_THERMAL_CONSTANTS
END_GROUP = LANDSAT_METADATA_FILE
END
"""


def _mtl_json(text: str) -> str:
    """The same MTL in USGS's JSON form (``*_MTL.json``): nested objects, one per group."""
    import json

    from eotasks.catalog.scaling import parse_mtl

    groups = parse_mtl(text)
    inner = {name: values for name, values in groups.items() if name not in ("", "LANDSAT_METADATA_FILE")}
    return json.dumps({"LANDSAT_METADATA_FILE": inner})


@pytest.mark.parametrize("form", ["txt", "json"])
def test_landsat_c2_level2_folder_with_a_real_mtl_gets_surface_reflectance(tmp_path, sqlite_url, form):
    folder = tmp_path / f"l2-{form}"
    write_bands(folder, {"SR_B4": 20000, "SR_B5": 30000, "ST_B10": 44000}, res=30.0, prefix=f"{L2_ID}_")
    (folder / f"{L2_ID}_MTL.{form}").write_text(MTL_L2 if form == "txt" else _mtl_json(MTL_L2))
    record = ingest_folder(folder, "landsat8", view_id=f"L8/{L2_ID}", url=sqlite_url)
    assert (record.assets["B4"]["scale"], record.assets["B4"]["offset"]) == (2.75e-5, -0.2)
    assert record.assets["B10"]["unit"] == "kelvin" and (record.assets["B10"]["scale"], record.assets["B10"]["offset"]) == (
        0.00341802,
        149.0,
    )
    [program] = compile_expressions("B4", SENSORS["landsat8"])
    values = read_aoi(scene_assets(record), ["B4"], None, mask_outside=False).evaluate([program]).values[0]
    assert values[0, 0] == pytest.approx(0.35, abs=1e-12)  # 20000 x 2.75e-5 - 0.2, not Level-1's 0.30
    red, nir = 20000 * 2.75e-5 - 0.2, 30000 * 2.75e-5 - 0.2
    assert ndvi_of(record) == pytest.approx((nir - red) / (nir + red), abs=1e-12)


def test_landsat_c2_level1_folder_reads_the_level1_groups_of_the_same_layout(tmp_path, sqlite_url):
    folder = tmp_path / "l1-real"
    write_bands(folder, {"B4": 20000, "B10": 20000}, res=30.0, prefix=f"{L1_ID}_")
    (folder / f"{L1_ID}_MTL.txt").write_text(MTL_L2.replace("L2SP", "L1TP"))
    record = ingest_folder(folder, "landsat8", view_id=f"L8/{L1_ID}", url=sqlite_url)
    assert (record.assets["B4"]["scale"], record.assets["B4"]["offset"]) == (2e-5, -0.1)
    assert record.assets["B10"]["unit"] == "radiance" and record.assets["B10"]["constants"] == {"K1": 774.8853, "K2": 1321.0789}
