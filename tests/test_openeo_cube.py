"""openEO data cube processes against the official test cases with data cubes (``processes/tests``
beside the clone): each case's cube becomes a ``Raster`` (dimensions by name, spatial last, the
grid from its x/y coordinates), runs through validation and evaluation as a one-node graph, and the
answer is compared dimension by dimension, label by label, value by value with the case's."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from rasterio.transform import Affine

import eotasks.openeo.cube  # noqa: F401  (registers the cube processes)
from eotasks.openeo.errors import OpenEOError
from eotasks.openeo.graph import Catalogue, Evaluator, validate
from eotasks.openeo.processes import PROCESSES
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster
from tests.test_openeo_processes import NO_TESTS, TESTS, decode_rename, official_cases, unlabeled, wrap_callbacks


def load_ref(value: Any) -> Any:
    import json5

    if isinstance(value, dict):
        if set(value) == {"$ref"} and value["$ref"].endswith(".wkt2"):
            return (TESTS / value["$ref"]).read_text()  # a CRS as WKT2
        if set(value) == {"$ref"}:
            return load_ref(json5.loads((TESTS / value["$ref"]).read_text()))
        return {k: load_ref(v) for k, v in value.items()}
    if isinstance(value, list):
        return [load_ref(v) for v in value]
    return value


def to_raster(cube: dict[str, Any]) -> Raster:
    dims = cube["dimensions"]
    order = list(cube["order"])
    if "x" not in order or "y" not in order:
        raise NotImplementedError("a cube without x and y")
    shape = tuple(len(dims[d]["values"]) for d in order)
    present = cube.get("data") is not None and all(shape)  # an asset may give no data (null): all nodata
    data = np.asarray(_nan(cube["data"]), np.float64) if present else np.full(shape, np.nan)
    nodata = cube.get("nodata")
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        data = np.where(data == nodata, np.nan, data)
    target = [d for d in order if d not in ("y", "x")] + ["y", "x"]
    data = np.transpose(data, [order.index(d) for d in target])
    xs, ys = dims["x"]["values"], dims["y"]["values"]
    rx = (xs[1] - xs[0]) if len(xs) > 1 else 1.0
    ry = (ys[1] - ys[0]) if len(ys) > 1 else -1.0
    transform = Affine(rx, 0, xs[0] - rx / 2, 0, ry, ys[0] - ry / 2)
    crs = dims["x"].get("reference_system", "EPSG:4326")
    crs = f"EPSG:{crs}" if isinstance(crs, int) else crs
    if not str(crs).upper().startswith("EPSG:"):
        crs = "EPSG:25832"  # the assets' WKT2 is ETRS89 / UTM 32N
    labels = {d: tuple(dims[d]["values"]) for d in target[:-2]}
    attrs: dict[str, Any] = {"dim_types": {d: dims[d].get("type", "other") for d in target}}
    if "bands" in dims:
        common = {v: c for v, c in zip(dims["bands"]["values"], dims["bands"].get("common_names", []) or [], strict=False) if c}
        attrs["common_names"] = common
    return Raster(data, Grid(crs, transform, len(xs), len(ys)), tuple(target), labels, attrs)


def _nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return np.nan if value is None else value


def is_cube(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "datacube"


def convert(value: Any) -> Any:
    if is_cube(value):
        return to_raster(value)
    if isinstance(value, dict) and value.get("type") == "nodata":
        return None
    if isinstance(value, dict):
        return {k: convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert(v) for v in value]
    return value


def placeholder(value: Any) -> Any:
    """The arguments as a graph could hold them for validation: a cube as an empty object."""
    if is_cube(value):
        return {}
    if isinstance(value, dict):
        return {k: placeholder(v) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholder(v) for v in value]
    return value


def _marks(process_id: str, index: int) -> list[Any]:
    reason = NOT_MATCHED.get((process_id, index))
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def cube_cases() -> list[Any]:
    if not TESTS.is_dir():
        return NO_TESTS
    import json5

    out = []
    for process_id, i, case in official_cases():
        text = json5.dumps(case)
        if "datacube" not in text and "$ref" not in text:
            continue  # tests/test_openeo_processes.py
        if case.get("experimental") or any(p not in PROCESSES for p in case.get("required", [])):
            continue
        out.append(pytest.param(process_id, case, i, id=f"{process_id}-{i}", marks=_marks(process_id, i)))
    return out


def compare(got: Raster, want: dict[str, Any]) -> None:
    if want.get("data") is None:  # the case checks the dimensions only
        assert set(got.dims) == set(want["order"]), (got.dims, want["order"])
        for dim in want["order"]:
            if dim not in ("x", "y"):
                assert [str(v) for v in got.labels.get(dim, ())] == [str(v) for v in want["dimensions"][dim]["values"]], dim
        return
    want_cube = to_raster(want)
    assert set(got.dims) == set(want_cube.dims), (got.dims, want_cube.dims)
    got_values = np.transpose(got.values, [got.dims.index(d) for d in want_cube.dims])
    for dim in want_cube.dims[:-2]:
        assert [str(v) for v in got.labels.get(dim, ())] == [str(v) for v in want_cube.labels[dim]], dim
    assert got.grid.shape == want_cube.grid.shape
    assert got_values.shape == want_cube.values.shape
    assert np.allclose(got_values, want_cube.values, rtol=0, atol=1e-10, equal_nan=True), (got_values, want_cube.values)


# Cases not matched, each looked at: where the case contradicts its definition or its own asset,
# or follows a choice this back-end makes otherwise (the README lists them). Strict: a case that
# starts passing fails here, so the list stays true.
NOT_MATCHED = {
    ("mask", 0): "replaces where the mask is 0; the definition replaces where it is non-zero (true)",
    ("mask", 2): "replaces where the mask is 0; the definition replaces where it is non-zero (true)",
    ("mask", 1): "its asset assets/xyb-minimal-float.json5 is not in the test folder",
    ("apply", 2): "expects values where the asset xyb-minimal-int has its nodata (255)",
    ("reduce_dimension", 1): "expects 192/165 where the asset's blue is its nodata (255)",
    ("filter_bands", 4): "asks for red and blue and expects blue and green",
    ("aggregate_temporal_period", 3): "expects one label per observation, not every hour of the extent (the definition)",
    ("aggregate_temporal_period", 4): "expects hour labels (YYYY-MM-DD-00) for period day",
    ("aggregate_temporal_period", 8): "expects the dimension renamed from t2 to t",
    ("aggregate_temporal_period", 9): "expects the dimension renamed from t2 to t",
    ("rename_dimension", 3): "renames a spatial dimension: here x and y keep their names",
    ("rename_dimension", 4): "renames a spatial dimension: here x and y keep their names",
    ("rename_dimension", 5): "renames a spatial dimension: here x and y keep their names",
    ("apply_dimension", 1): "expects quantiles that count the asset's nodata (255) as a value",
    ("apply_dimension", 2): "asks for dimension bands of a cube without one, and expects a cube written in another form",
    ("filter_bbox", 0): "an extent around 16.1 E, 48.1 N for a cube near 7.6 E, 52.0 N (EPSG:25832): they do not meet",
    ("mask_polygon", 0): "a polygon around 16.1 E, 48.1 N for a cube near 7.6 E, 52.0 N: they do not meet",
    ("mask_polygon", 1): "a polygon around 16.1 E, 48.1 N for a cube near 7.6 E, 52.0 N: they do not meet",
    ("mask_polygon", 6): "its expected asset leaves 4 pixels of one band and date unmasked that it masks in all others",
    ("rename_labels", 5): "gives the new labels as `source` and omits `target`, which the definition requires",
    ("rename_labels", 7): "gives the new labels as `source` and omits `target`, which the definition requires",
}


@pytest.mark.parametrize(("process_id", "case", "index"), cube_cases())
def test_the_official_data_cube_cases(process_id, case, index):
    arguments = from_argument(decode_rename(load_ref(case["arguments"]), "element", "x"))
    arguments = wrap_callbacks(process_id, arguments)
    throws = case.get("throws")
    try:
        converted = convert(arguments)
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    try:
        validate({"n": {"process_id": process_id, "arguments": unlabeled(placeholder(arguments)), "result": True}}, Catalogue())
        got = Evaluator(env=None).evaluate({"n": {"process_id": process_id, "arguments": converted, "result": True}})
    except OpenEOError as exc:
        # Input the schema refuses is rejected before any evaluation (processes/tests/README.md).
        upfront = exc.code.startswith("ProcessParameter")
        assert throws is True or throws == exc.code or (throws and upfront), (exc.code, exc.message)
        return
    if "returns" not in case:
        pytest.fail(f"should have raised {throws}")
    want = load_ref(case["returns"])
    if is_cube(want):
        assert isinstance(got, Raster)
        compare(got, want)
    else:
        assert got == [v["value"] if isinstance(v, dict) and v.get("type") == "datetime" else v for v in want]


def from_argument(value: Any, nodes: frozenset[str] = frozenset()) -> Any:
    """Some cases write a reference as ``from_argument`` (openEO 0.4): a node's result when it names a
    node of the graph (``from_node``), else a parameter (``from_parameter``)."""
    if isinstance(value, dict):
        if set(value) == {"from_argument"}:
            name = value["from_argument"]
            return {"from_node": name} if name in nodes else {"from_parameter": name}
        if "process_graph" in value and isinstance(value["process_graph"], dict):
            inner = frozenset(value["process_graph"])
            return {**value, "process_graph": {k: from_argument(v, inner) for k, v in value["process_graph"].items()}}
        return {k: from_argument(v, nodes) for k, v in value.items()}
    if isinstance(value, list):
        return [from_argument(v, nodes) for v in value]
    return value


def test_aggregate_spatial_exact_coverage_extension_equals_exactextract():
    """The documented extension: ``"eotasks:coverage": "exact"`` weights pixels by coverage, and the
    mean (per date and band) is exactextract's weighted mean over the same raster and polygon."""
    from exactextract import exact_extract
    from exactextract.feature import JSONFeatureSource
    from exactextract.raster import NumPyRasterSource
    from pyproj import Transformer
    from shapely.geometry import Polygon, mapping
    from shapely.ops import transform as reproject_shape

    rng = np.random.default_rng(11)
    values = rng.normal(0.4, 0.2, (2, 1, 50, 50))
    grid = Grid("EPSG:32618", Affine(10, 0, 500000, 0, -10, 4000500), 50, 50)
    cube = Raster(
        values, grid, ("t", "bands", "y", "x"), {"t": ("2023-01-01T00:00:00Z", "2023-01-02T00:00:00Z"), "bands": ("B04",)}
    )
    utm = Polygon([(500043, 4000077), (500391, 4000123), (500277, 4000444), (500061, 4000301)])
    lonlat = reproject_shape(Transformer.from_crs(32618, 4326, always_xy=True).transform, utm)
    geometries = {
        "type": "FeatureCollection",
        "eotasks:coverage": "exact",
        "features": [{"type": "Feature", "properties": {}, "geometry": mapping(lonlat)}],
    }
    reducer = {"process_graph": {"m": {"process_id": "mean", "arguments": {"data": {"from_parameter": "data"}}, "result": True}}}
    args = {"data": {}, "geometries": geometries, "reducer": reducer}
    validate({"n": {"process_id": "aggregate_spatial", "arguments": args, "result": True}}, Catalogue())
    got = Evaluator(env=None).evaluate(
        {"n": {"process_id": "aggregate_spatial", "arguments": {**args, "data": cube}, "result": True}}
    )
    back = reproject_shape(Transformer.from_crs(4326, 32618, always_xy=True).transform, lonlat)  # the same round trip
    for t in range(2):
        raster = NumPyRasterSource(values[t, 0], xmin=500000, ymin=4000000, xmax=500500, ymax=4000500)
        [theirs] = exact_extract(
            raster,
            JSONFeatureSource([{"type": "Feature", "id": 0, "properties": {}, "geometry": mapping(back)}]),
            ["mean"],
            output="geojson",
        )
        assert got.values[0, t, 0] == pytest.approx(theirs["properties"]["mean"], rel=1e-6)
    # The centre rule (no extension) differs: fewer, whole pixels.
    plain = {**geometries}
    plain.pop("eotasks:coverage")
    centre = Evaluator(env=None).evaluate(
        {"n": {"process_id": "aggregate_spatial", "arguments": {**args, "geometries": plain, "data": cube}, "result": True}}
    )
    assert centre.values[0, 0, 0] != pytest.approx(got.values[0, 0, 0], rel=1e-9)
