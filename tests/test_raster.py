"""Raster maths against independent rasterio + numpy + shapely computations on real pixels."""

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.windows import from_bounds
from shapely.geometry import Polygon

from eotasks.errors import AOIError
from eotasks.raster.aoi import aoi_from_bbox
from eotasks.raster.encode import cog_bytes
from eotasks.raster.image import Raster
from eotasks.raster.indices import compile_expressions
from eotasks.raster.read import Asset, read_aoi
from eotasks.raster.stats import summarize
from eotasks.sensors import SENSORS
from tasks.encode import NODATA
from tests.conftest import CROP_DIR
from tests.reference import independent_ndvi

S2 = SENSORS["sentinel2"]
# A triangle inside the 3 x 3 km crop (lon/lat).
TRIANGLE = Polygon([(-75.6595, 37.6985), (-75.6420, 37.6960), (-75.6500, 37.7160)])


def assets(scale=1e-4, offset=0.0):
    return {
        b: Asset(str(CROP_DIR / f"{b}.tif"), S2.band(b).resolution, scale, offset, 0)
        for b in ("B02", "B03", "B04", "B08", "B05", "B11", "B01")
    }


def written(raster: Raster) -> np.ndarray:
    """What the bandmath file holds: the raster written as a Float32 COG, read back."""
    with (
        MemoryFile(
            cog_bytes(
                np.where(np.isnan(raster.values), NODATA, raster.values).astype(np.float32),
                raster.grid.crs,
                raster.grid.transform,
                NODATA,
            )
        ) as mem,
        mem.open() as ds,
    ):
        return ds.read()


def test_ndvi_over_polygon_equals_independent_computation():
    programs = compile_expressions("NDVI", S2)
    bands = read_aoi(assets(), ["B08", "B04"], TRIANGLE, mask_outside=True)
    out = written(bands.evaluate(programs, np.float32))[0]
    expected, inside, transform = independent_ndvi(list(TRIANGLE.exterior.coords))
    assert bands.grid.transform == transform
    assert out.shape == expected.shape
    assert np.array_equal(out != NODATA, inside)
    np.testing.assert_allclose(out[inside], expected[inside].astype(np.float32), atol=1e-6)
    assert (out[~inside] == NODATA).all()


def test_bands_of_different_resolutions_are_averaged_onto_the_coarsest_grid():
    cropped = read_aoi(assets(), ["B04", "B11"], TRIANGLE, mask_outside=False, scaled=False)
    assert cropped.grid.transform.a == 20.0
    with rasterio.open(CROP_DIR / "B04.tif") as red:
        w = from_bounds(*cropped.grid.bounds, transform=red.transform)
        fine = red.read(1, window=w).astype(np.float64)
    h, wd = cropped.grid.height, cropped.grid.width
    expected = fine.reshape(h, 2, wd, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(cropped.band("B04"), expected, atol=0.5)  # the mean of the finer pixels


def test_bbox_crops_without_masking_and_outside_aoi_is_an_error():
    bbox = [-75.66, 37.70, -75.64, 37.715]
    cropped = read_aoi(assets(), ["B04"], aoi_from_bbox(bbox), mask_outside=False)
    assert cropped.valid.all() and cropped.grid.width > 100
    with pytest.raises(AOIError, match="does not intersect"):
        read_aoi(assets(), ["B04"], aoi_from_bbox([10, 10, 10.1, 10.1]), mask_outside=True)


def test_reflectance_scaling_l1c_l2a_and_landsat():
    import tempfile
    from pathlib import Path

    from affine import Affine

    dn = np.array([[0, 1000, 2500]], dtype=np.uint16)
    path = Path(tempfile.mkdtemp()) / "B04.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=3,
        height=1,
        count=1,
        dtype="uint16",
        crs="EPSG:32618",
        transform=Affine(10, 0, 440000, 0, -10, 4170000),
    ) as dst:
        dst.write(dn, 1)
    for scale, offset, expected in [
        (1e-4, 0.0, dn / 10000),
        (1e-4, -0.1, (dn.astype(float) - 1000) / 10000),
        (2.75e-5, -0.2, dn * 0.0000275 - 0.2),
    ]:
        values = read_aoi({"B04": Asset(str(path), 10, scale, offset, None)}, ["B04"], None, mask_outside=False).band("B04")
        np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-15)
    with_nodata = read_aoi({"B04": Asset(str(path), 10, 1e-4, 0.0, 0)}, ["B04"], None, mask_outside=False).band("B04")
    assert np.isnan(with_nodata[0, 0]) and with_nodata[0, 1] == pytest.approx(0.1)  # DN 0 is the band's nodata


def test_nodata_and_division_by_zero_give_nodata_never_inf():
    cropped = read_aoi(assets(), ["B04", "B08"], None, mask_outside=False)
    values = cropped.values.copy()
    values[0, 0, :3] = [np.nan, 5e-4, 50e-4]  # B04 nodata, then reflectance
    values[1, 0, :3] = [100e-4, 5e-4, 5e-4]
    out = written(
        cropped.replace(values=values).evaluate(compile_expressions("B08 / (B08 - B04), log(B04 - B08)", S2), np.float32)
    )
    assert out[0, 0, 0] == NODATA  # B04 nodata
    assert out[0, 0, 1] == NODATA  # 5 / 0
    assert out[1, 0, 2] == pytest.approx(np.log(0.0045), rel=1e-6) and out[1, 0, 1] == NODATA  # log(0) = -inf
    assert np.isfinite(out).all()


def test_cog_is_tiled_deflate_float32_with_nodata_and_georeferencing():
    data = np.random.default_rng(1).random((2, 700, 600)).astype(np.float32)
    transform = rasterio.transform.from_origin(440000, 4170000, 10, 10)
    with MemoryFile(cog_bytes(data, "EPSG:32618", transform, -9999.0, ["a", "b"])) as mem, mem.open() as ds:
        assert ds.profile["blockxsize"] == 512 and ds.profile["compress"] == "deflate" and ds.dtypes == ("float32", "float32")
        assert ds.nodata == -9999.0 and ds.crs.to_epsg() == 32618 and ds.transform == transform
        assert ds.descriptions == ("a", "b")
        np.testing.assert_array_equal(ds.read(), data)


def test_summarize_against_numpy():
    v = np.random.default_rng(3).normal(0.4, 0.2, 10_001)
    s = summarize(v)
    assert s["variance"] == pytest.approx(np.var(v), rel=1e-12) and s["std"] == pytest.approx(np.std(v), rel=1e-12)
    assert s["q1"] == pytest.approx(np.percentile(v, 25)) and s["p90"] == pytest.approx(np.percentile(v, 90))
    assert s["median"] == pytest.approx(np.median(v)) and s["average"] == pytest.approx(v.mean())
    assert summarize(np.array([1.0, 2.0, 3.0, 4.0]))["q1"] == 1.75  # linear interpolation
    with pytest.raises(ValueError):
        summarize(np.array([]))


@pytest.mark.parametrize("name", ["RdYlGn", "viridis", "RdYlGn_r"])
def test_every_colormap_byte_equals_matplotlibs(name):
    """Our palette and pixel classes against Matplotlib's own cmap(x, bytes=True), for values across
    the levels, at the ends, outside them and exactly on class edges."""
    from matplotlib import colormaps

    from eotasks.raster.render import colorize

    levels = (-0.2, 0.8)
    values = np.concatenate([np.linspace(-0.5, 1.1, 4001), levels[0] + (levels[1] - levels[0]) * np.arange(257) / 256])
    index, palette = colorize(values, np.ones(values.shape, bool), name, levels, None)
    ours = palette[index]
    theirs = colormaps[name]((values - levels[0]) / (levels[1] - levels[0]), bytes=True)[:, :3]
    np.testing.assert_array_equal(ours, theirs)
    lut = colormaps[name](np.arange(256), bytes=True)[:, :3]
    np.testing.assert_array_equal(palette, lut)  # all 256 entries


@pytest.mark.parametrize("tagged", [False, True])
def test_resampling_never_mixes_nodata_into_valid_pixels(tmp_path, tagged):
    """A tile edge: a 10 m band whose left columns are 0 (fill), averaged onto a 20 m grid, with and
    without a nodata tag in the file (ESA's JPEG 2000 bands have none). No half values."""
    from affine import Affine
    from shapely.geometry import box

    rng = np.random.default_rng(1)
    fine = rng.integers(1000, 4000, (40, 40)).astype(np.uint16)
    fine[:, :7] = 0  # the tile's edge runs through the fourth 20 m column
    coarse = rng.integers(1000, 4000, (20, 20)).astype(np.uint16)
    crs, x0, y0 = "EPSG:32632", 500000.0, 5000000.0
    for name, data, res in (("B05", fine, 10.0), ("B11", coarse, 20.0)):
        profile = {
            "driver": "GTiff",
            "width": data.shape[1],
            "height": data.shape[0],
            "count": 1,
            "dtype": "uint16",
            "crs": crs,
            "transform": Affine(res, 0, x0, 0, -res, y0),
        }
        if tagged:
            profile["nodata"] = 0
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
            dst.write(data, 1)
    assets = {"B05": Asset(str(tmp_path / "B05.tif"), 10.0, nodata=0), "B11": Asset(str(tmp_path / "B11.tif"), 20.0, nodata=0)}
    from pyproj import Transformer

    t = Transformer.from_crs(crs, 4326, always_xy=True)
    aoi = box(*t.transform(x0 + 1, y0 - 399), *t.transform(x0 + 399, y0 - 1))
    cropped = read_aoi(assets, ["B05", "B11"], aoi, mask_outside=False, scaled=False)
    assert cropped.grid.transform.a == 20.0
    col0 = round((cropped.grid.transform.c - x0) / 20)
    row0 = round((y0 - cropped.grid.transform.f) / 20)
    h, w = cropped.grid.height, cropped.grid.width
    blocks = fine[2 * row0 : 2 * (row0 + h), 2 * col0 : 2 * (col0 + w)].astype(np.float64).reshape(h, 2, w, 2)
    valid = blocks != 0
    counts = valid.sum(axis=(1, 3))
    expected = np.where(counts > 0, np.where(valid, blocks, 0).sum(axis=(1, 3)) / np.maximum(counts, 1), 0)
    np.testing.assert_array_equal(~np.isnan(cropped.band("B05")), counts > 0)
    np.testing.assert_allclose(cropped.band("B05")[counts > 0], expected[counts > 0], rtol=0, atol=1e-9)
    # The mixed column is the mean of its valid half, never half of it.
    mixed = cropped.band("B05")[:, 3 - col0]
    assert (mixed >= 1000).all()


def test_a_merged_lbe_keeps_each_bands_nodata():
    """SR_B4 (fill 0) and QA_PIXEL (fill 1) at 30 m with merge: a GeoTIFF holds one nodata value, so
    they are two files, each with its own; bands that share one stay merged."""
    import io
    import zipfile

    from affine import Affine
    from rasterio.io import MemoryFile

    from eotasks.raster.grid import Grid
    from eotasks.raster.package import package, plan_groups

    grid = Grid("EPSG:32618", Affine(30, 0, 500000, 0, -30, 4000000), 4, 3)
    data = {
        "B4": np.full((3, 4), 7000, np.uint16),
        "B5": np.full((3, 4), 9000, np.uint16),
        "QA_PIXEL": np.full((3, 4), 21824, np.uint16),
    }
    cropped = Raster.of_bands({b: v.astype(np.float32) for b, v in data.items()}, grid, {"dtypes": dict.fromkeys(data, "uint16")})
    nodata = {"B4": 0, "B5": 0, "QA_PIXEL": 1}
    groups = plan_groups(["B4", "QA_PIXEL", "B5"], dict.fromkeys(data, 30.0), True, nodata)
    assert [g.bands for g in groups] == [("B4", "B5"), ("QA_PIXEL",)]
    import tempfile
    from pathlib import Path

    _name, path = package("LC08_X", "landsat", [(g, cropped) for g in groups], nodata, {}, Path(tempfile.mkdtemp()))
    blob = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        files = sorted(zf.namelist())
        assert files == ["LC08_X_B4-B5.tif", "LC08_X_QA_PIXEL.tif"]
        with MemoryFile(zf.read("LC08_X_B4-B5.tif")) as mem, mem.open() as ds:
            assert ds.count == 2 and ds.nodatavals == (0, 0)
        with MemoryFile(zf.read("LC08_X_QA_PIXEL.tif")) as mem, mem.open() as ds:
            assert ds.nodata == 1 and (ds.read(1) == 21824).all()
