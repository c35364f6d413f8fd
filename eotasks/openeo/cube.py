"""The data cube processes: a raster cube is a ``Raster`` with named dimensions (``t``, ``bands``,
``y``, ``x``, and any the user adds), NaN as no data; a vector cube a ``VectorCube``.

Loading and saving go through ``env`` (``eotasks.openeo.load``: the catalogue, windowed reads and
the result files), so these functions stay plain numpy and raster core: the warp and grids of
SPEC §5 (``eotasks.raster.grid``, ``Raster.warp``), the calendar periods of SPEC §6
(``eotasks.intervals``), the AOI rule of the tasks (``eotasks.raster.aoi.centre_inside``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from eotasks.openeo.errors import OpenEOError, process_error
from eotasks.openeo.processes import process
from eotasks.openeo.values import Labeled, VectorCube
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster

SPATIAL = ("y", "x")


def _cube(data: Any, process_id: str) -> Raster:
    if not isinstance(data, Raster):
        raise OpenEOError(
            "ProcessParameterInvalid",
            f"The value passed for parameter 'data' in process '{process_id}' is invalid: not a raster data cube",
        )
    return data


def _dimension(cube: Raster, name: str | None, process_id: str) -> str:
    if name is None or name not in cube.dims:
        raise process_error(
            "DimensionNotAvailable",
            f"A dimension with the specified name does not exist: {name!r} (the cube has {', '.join(cube.dims)}).",
        )
    return name


def temporal_dimension(cube: Raster, name: str | None, process_id: str) -> str:
    """``name``, or the cube's one temporal dimension (``t``, or the one its metadata calls temporal)."""
    if name is not None:
        return _dimension(cube, name, process_id)
    types = dict(cube.attrs.get("dim_types", {}))
    temporal = [d for d in cube.dims if types.get(d, "temporal" if d == "t" else "other") == "temporal"]
    if len(temporal) > 1:
        raise process_error(
            "TooManyDimensions",
            "The data cube contains multiple temporal dimensions. The parameter `dimension` must be specified.",
        )
    if not temporal:
        raise process_error(
            "DimensionNotAvailable", "A dimension with the specified name does not exist: the cube has no temporal dimension."
        )
    return temporal[0]


def labels_of(cube: Raster, dim: str) -> tuple[Any, ...]:
    """A dimension's labels: given for ``t``, ``bands`` and added ones; pixel centres for x and y."""
    if dim == "x":
        t = cube.grid.transform
        return tuple(float(t.c + (i + 0.5) * t.a) for i in range(cube.grid.width))
    if dim == "y":
        t = cube.grid.transform
        return tuple(float(t.f + (j + 0.5) * t.e) for j in range(cube.grid.height))
    return tuple(cube.labels.get(dim, ()))


def _without(cube: Raster, dim: str, values: np.ndarray) -> Raster:
    dims = tuple(d for d in cube.dims if d != dim)
    labels = {k: v for k, v in cube.labels.items() if k != dim}
    return Raster(
        np.asarray(values, np.float64).reshape(*[cube.values.shape[cube.axis(d)] for d in dims]),
        cube.grid,
        dims,
        labels,
        dict(cube.attrs),
    )


def _array_of(result: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(result, Labeled):
        result = result.values
    if result is None:
        return np.full(shape, np.nan)
    return (
        np.broadcast_to(np.asarray(result, np.float64), shape).copy()
        if np.ndim(result) < len(shape)
        else np.asarray(result, np.float64)
    )


# --- dimensions and labels ------------------------------------------------------------------------


def _along(data: Any, dimension: str, process_id: str) -> tuple[Raster, str, int, np.ndarray]:
    """(cube, dimension, its axis, the values with that axis first): what a callback over a
    non-spatial dimension gets (every pixel at once)."""
    cube = _cube(data, process_id)
    dim = _dimension(cube, dimension, process_id)
    if dim in SPATIAL:
        raise process_error(
            "DimensionNotAvailable", f"{process_id} over a spatial dimension is not supported here (aggregate_spatial is)."
        )
    axis = cube.axis(dim)
    return cube, dim, axis, np.moveaxis(cube.values, axis, 0)


@process("reduce_dimension")
def reduce_dimension(data: Any, reducer: Any, dimension: str, context: Any = None) -> Any:
    cube, dim, _, moved = _along(data, dimension, "reduce_dimension")
    result = reducer(data=Labeled(moved, labels_of(cube, dim)), context=context)
    return _without(cube, dim, _array_of(result, moved.shape[1:]))


@process("apply")
def apply(data: Any, process: Any, context: Any = None) -> Any:
    if isinstance(data, VectorCube):
        return VectorCube(
            _array_of(process(x=data.values, context=context), data.values.shape), data.dims, data.labels, data.geometries
        )
    cube = _cube(data, "apply")
    return cube.replace(values=_array_of(process(x=cube.values, context=context), cube.values.shape))


@process("apply_dimension")
def apply_dimension(data: Any, process: Any, dimension: str, target_dimension: str | None = None, context: Any = None) -> Any:
    cube, dim, axis, moved = _along(data, dimension, "apply_dimension")
    result = process(data=Labeled(moved, labels_of(cube, dim)), context=context)
    values = result.values if isinstance(result, Labeled) else result
    if isinstance(values, list):
        values = np.stack([_array_of(v, moved.shape[1:]) for v in values])
    values = np.asarray(values, np.float64)
    if values.ndim == moved.ndim - 1:
        values = values[None]
    # The dimension keeps its labels when the process keeps its length; a new target dimension, or
    # another length, is labelled 0, 1, 2 ... (the definition).
    same = values.shape[0] == moved.shape[0] and (target_dimension is None or target_dimension == dim)
    labels = labels_of(cube, dim) if same else tuple(range(values.shape[0]))
    name = target_dimension or dim
    if target_dimension and target_dimension != dim and target_dimension in cube.dims:
        raise process_error("DimensionExists", f"A dimension with the specified name already exists: {target_dimension}.")
    dims = tuple(name if d == dim else d for d in cube.dims)
    new_labels = {k: v for k, v in cube.labels.items() if k != dim}
    new_labels[name] = labels
    return Raster(np.moveaxis(values, 0, axis), cube.grid, dims, new_labels, dict(cube.attrs))


@process("dimension_labels")
def dimension_labels(data: Any, dimension: str) -> list[Any]:
    cube = _cube(data, "dimension_labels")
    return list(labels_of(cube, _dimension(cube, dimension, "dimension_labels")))


@process("rename_labels")
def rename_labels(data: Any, dimension: str, target: list[Any], source: list[Any] | None = None) -> Any:
    cube = _cube(data, "rename_labels")
    dim = _dimension(cube, dimension, "rename_labels")
    have = list(labels_of(cube, dim))
    source = list(source or [])
    if source and len(source) != len(target):
        raise process_error("LabelMismatch", "The number of labels in the parameters `source` and `target` don't match.")
    if not source:
        # Without source, target renames the enumerated labels 0, 1, 2 ... (the definition).
        if any(not isinstance(label, int) or isinstance(label, bool) or label != i for i, label in enumerate(have)):
            raise process_error(
                "LabelsNotEnumerated", "The dimension labels are not enumerated: specify the labels to rename in `source`."
            )
        if len(target) != len(have):
            raise process_error("LabelMismatch", "The number of labels in the parameters `source` and `target` don't match.")
        renamed = list(target)
    else:
        renamed = list(have)
        for old, new in zip(source, target, strict=True):
            if old not in have:
                raise process_error("LabelNotAvailable", f"A label with the specified name does not exist: {old}.")
            renamed[have.index(old)] = new
    if len(set(renamed)) != len(renamed):
        raise process_error("LabelExists", "A label with the specified name exists.")
    return cube.replace(labels={**cube.labels, dim: tuple(renamed)})


@process("rename_dimension")
def rename_dimension(data: Any, source: str, target: str) -> Any:
    cube = _cube(data, "rename_dimension")
    _dimension(cube, source, "rename_dimension")
    if target in cube.dims:
        raise process_error("DimensionExists", f"A dimension with the specified name already exists: {target}.")
    if source in SPATIAL:
        raise process_error("DimensionNotAvailable", "The spatial dimensions keep their names here (x, y).")
    labels = {(target if k == source else k): v for k, v in cube.labels.items()}
    return cube.replace(dims=tuple(target if d == source else d for d in cube.dims), labels=labels)


@process("add_dimension")
def add_dimension(data: Any, name: str, label: Any, type: str = "other") -> Any:
    cube = _cube(data, "add_dimension")
    if name in cube.dims:
        raise process_error("DimensionExists", f"A dimension with the specified name already exists: {name}.")
    return Raster(cube.values[None], cube.grid, (name, *cube.dims), {name: (label,), **cube.labels}, dict(cube.attrs))


@process("drop_dimension")
def drop_dimension(data: Any, name: str) -> Any:
    cube = _cube(data, "drop_dimension")
    dim = _dimension(cube, name, "drop_dimension")
    if dim in SPATIAL or cube.values.shape[cube.axis(dim)] != 1:
        raise process_error(
            "DimensionLabelCountMismatch", "The number of dimension labels exceeds one, which requires a reducer."
        )
    return _without(cube, dim, np.take(cube.values, 0, axis=cube.axis(dim)))


# --- filters --------------------------------------------------------------------------------------


def common_names(cube: Raster) -> dict[str, str]:
    return dict(cube.attrs.get("common_names", {}))


def band_label(cube: Raster, name: str) -> str | None:
    """A band by its label, or by its common name (``nir``, ``red``) as the collection says."""
    bands = labels_of(cube, "bands")
    if name in bands:
        return name
    by_common = {common: band for band, common in common_names(cube).items() if band in bands}
    return by_common.get(name)


@process("filter_bands")
def filter_bands(data: Any, bands: list[str] | None = None, wavelengths: list[Any] | None = None) -> Any:
    cube = _cube(data, "filter_bands")
    if not bands and not wavelengths:
        raise process_error(
            "BandFilterParameterMissing",
            "The process `filter_bands` requires any of the parameters `bands`, `common_names` or `wavelengths` to be set.",
        )
    if wavelengths:
        raise process_error("ProcessParameterInvalid", "Filtering by wavelengths is not supported here: name the bands.")
    if "bands" not in cube.dims:
        raise process_error("DimensionMissing", "A band dimension is missing.")
    # Bands by name or common name, in the order given; a name the cube does not have selects nothing.
    chosen = [label for label in (band_label(cube, name) for name in bands or []) if label is not None]
    return cube.select("bands", list(dict.fromkeys(chosen)))


def _instant(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    value = (
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if "T" in text
        else dt.datetime.fromisoformat(text + "T00:00:00+00:00")
    )
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


EMPTY_EXTENT = (
    "The temporal extent is empty. The second instant in time must always be greater/later than the first instant in time."
)


def temporal_bounds(extent: list[str | None]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) of an openEO temporal interval (end excluded), either end open."""
    if len(extent) != 2 or (extent[0] is None and extent[1] is None):
        raise process_error(
            "TemporalExtentEmpty",
            EMPTY_EXTENT,
        )
    start, end = _instant(extent[0]), _instant(extent[1])
    if start is not None and end is not None and end <= start:
        raise process_error(
            "TemporalExtentEmpty",
            EMPTY_EXTENT,
        )
    return start, end


@process("filter_temporal")
def filter_temporal(data: Any, extent: list[str | None], dimension: str | None = None) -> Any:
    cube = _cube(data, "filter_temporal")
    dim = temporal_dimension(cube, dimension, "filter_temporal")
    start, end = temporal_bounds(extent)

    def inside(label: Any) -> bool:
        when = _instant(str(label))
        return when is not None and (start is None or when >= start) and (end is None or when < end)

    return cube.select(dim, [label for label in labels_of(cube, dim) if inside(label)])


def bbox_in(extent: dict[str, Any], crs: str) -> tuple[float, float, float, float]:
    """An openEO bounding box (``west``, ``south``, ``east``, ``north``, ``crs`` default 4326) in ``crs``."""
    from rasterio.warp import transform_bounds

    source = extent.get("crs") or 4326
    source = f"EPSG:{source}" if isinstance(source, int) else str(source)
    bounds = (float(extent["west"]), float(extent["south"]), float(extent["east"]), float(extent["north"]))
    return transform_bounds(source, crs, *bounds, densify_pts=21) if source != crs else bounds


def crop_to(cube: Raster, bounds: tuple[float, float, float, float]) -> Raster:
    """The pixels whose centres fall inside ``bounds`` (in the cube's CRS)."""
    from eotasks.raster.grid import centre_window

    window = centre_window(bounds, cube.grid.transform, cube.grid.width, cube.grid.height)
    if window is None:
        raise process_error("ProcessParameterInvalid", "The extent does not meet the data cube: no pixel centre falls inside it.")
    rows = slice(int(window.row_off), int(window.row_off + window.height))
    cols = slice(int(window.col_off), int(window.col_off + window.width))
    return cube.replace(values=cube.values[..., rows, cols], grid=cube.grid.window(window))


@process("filter_bbox")
def filter_bbox(data: Any, extent: dict[str, Any]) -> Any:
    cube = _cube(data, "filter_bbox")
    return crop_to(cube, bbox_in(extent, cube.grid.crs))


# --- bands maths ----------------------------------------------------------------------------------


@process("ndvi")
def ndvi(data: Any, nir: str = "nir", red: str = "red", target_band: str | None = None) -> Any:
    cube = _cube(data, "ndvi")
    _dimension(cube, "bands", "ndvi")
    labels = []
    for name, code in ((nir, "NirBandAmbiguous"), (red, "RedBandAmbiguous")):
        label = band_label(cube, name)
        if label is None:
            raise process_error(code, f"The {name} band can't be resolved, please specify the specific band name.")
        labels.append(label)
    with np.errstate(all="ignore"):
        a, b = cube.band(labels[0]), cube.band(labels[1])
        values = (a - b) / (a + b)
    if target_band is None:
        return _without(cube, "bands", values)
    if target_band in labels_of(cube, "bands"):
        raise process_error("BandExists", "A band with the specified target name exists.")
    axis = cube.axis("bands")
    stacked = np.concatenate([cube.values, np.expand_dims(values, axis)], axis=axis)
    return cube.replace(values=stacked, labels={**cube.labels, "bands": (*labels_of(cube, "bands"), target_band)})


# --- masks ----------------------------------------------------------------------------------------


def _aligned(mask: Raster, cube: Raster) -> np.ndarray:
    """``mask``'s values broadcast onto ``cube``'s dimensions (by name; its dims a subset)."""
    if mask.grid != cube.grid:
        raise process_error(
            "ProcessParameterInvalid", "The mask is not on the data's grid: resample it first (resample_cube_spatial)."
        )
    missing = [d for d in mask.dims if d not in cube.dims]
    if missing:
        raise process_error("DimensionMismatch", f"The mask has dimensions the data does not: {', '.join(missing)}.")
    values = mask.values
    for dim in mask.dims:
        if dim in SPATIAL:
            continue
        if labels_of(mask, dim) != labels_of(cube, dim):
            if len(labels_of(mask, dim)) == 1:
                continue
            raise process_error("LabelMismatch", f"The labels of dimension {dim} differ between the data and the mask.")
    order = [d for d in cube.dims if d in mask.dims]
    values = np.transpose(values, [mask.dims.index(d) for d in order])
    shape = [values.shape[order.index(d)] if d in order else 1 for d in cube.dims]
    return np.broadcast_to(values.reshape(shape), cube.values.shape)


@process("mask")
def mask(data: Any, mask: Any, replacement: Any = None) -> Any:
    cube = _cube(data, "mask")
    m = _aligned(_cube(mask, "mask"), cube)
    true = (m != 0) & ~np.isnan(m)
    fill = np.nan if replacement is None else float(replacement)
    return cube.replace(values=np.where(true, fill, cube.values))


def geometries_of(geojson: dict[str, Any]) -> list[dict[str, Any]]:
    """The geometries of a GeoJSON geometry, Feature or FeatureCollection, in order."""
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        return [f["geometry"] for f in geojson.get("features", [])]
    if kind == "Feature":
        return [geojson["geometry"]]
    if kind == "GeometryCollection":
        return list(geojson.get("geometries", []))
    return [geojson]


def _shape_in(geometry: dict[str, Any], crs: str) -> Any:
    from shapely.geometry import shape

    from eotasks.raster.aoi import to_crs

    return to_crs(shape(geometry), crs)


@process("mask_polygon")
def mask_polygon(data: Any, mask: dict[str, Any], replacement: Any = None, inside: bool = False) -> Any:
    from shapely.ops import unary_union

    from eotasks.raster.aoi import centre_inside

    cube = _cube(data, "mask_polygon")
    region = unary_union([_shape_in(g, cube.grid.crs) for g in geometries_of(mask)])
    within = centre_inside(region, cube.grid)
    replace = within if inside else ~within
    fill = np.nan if replacement is None else float(replacement)
    return cube.replace(values=np.where(replace, fill, cube.values))


# --- grids ----------------------------------------------------------------------------------------

METHODS = {"near": "nearest", "nearest": "nearest"}


def resampling(method: str) -> Any:
    from eotasks.raster.warp import resampling_named

    try:
        return resampling_named(METHODS.get(method, method))
    except (KeyError, ValueError):
        raise process_error(
            "ProcessParameterInvalid", f"The value passed for parameter 'method' is invalid: {method!r}"
        ) from None


@process("resample_spatial")
def resample_spatial(
    data: Any, resolution: Any = 0, projection: Any = None, method: str = "near", align: str = "upper-left"
) -> Any:
    from eotasks.raster.grid import matching_resolution, output_grid

    cube = _cube(data, "resample_spatial")
    crs = cube.grid.crs if projection is None else (f"EPSG:{projection}" if isinstance(projection, int) else str(projection))
    from rasterio.warp import transform_bounds

    bounds = transform_bounds(cube.grid.crs, crs, *cube.grid.bounds, densify_pts=21) if crs != cube.grid.crs else cube.grid.bounds
    if resolution in (0, None, [0, 0]):
        res = matching_resolution(cube.grid.crs, cube.grid.resolution[0], cube.grid.bounds, crs)
    else:
        res = (
            (float(resolution), float(resolution))
            if isinstance(resolution, (int, float))
            else (float(resolution[0]), float(resolution[1]))
        )
    grid = output_grid(bounds, crs, resolution=res)
    if grid == cube.grid:
        return cube
    return cube.warp(grid, resampling(method))


@process("resample_cube_spatial")
def resample_cube_spatial(data: Any, target: Any, method: str = "near") -> Any:
    cube, onto = _cube(data, "resample_cube_spatial"), _cube(target, "resample_cube_spatial")
    if cube.grid == onto.grid:
        return cube
    return cube.warp(onto.grid, resampling(method))


# --- time -----------------------------------------------------------------------------------------

PERIODS = ("hour", "day", "week", "dekad", "month", "season", "tropical-season", "year", "decade", "decade-ad")


def period_label(when: dt.datetime, period: str) -> str:
    """The label of the period ``when`` falls in (the definition's forms; dekads 01 to 36)."""
    day = when.date()
    if period == "hour":
        return f"{day.isoformat()}-{when.hour:02d}"
    if period == "day":
        return f"{day.year:04d}-{day.timetuple().tm_yday:03d}"
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-{week:02d}"
    if period == "dekad":
        return f"{day.year:04d}-{(day.month - 1) * 3 + min(3, (day.day - 1) // 10 + 1):02d}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "season":
        names = {12: "djf", 1: "djf", 2: "djf", 3: "mam", 4: "mam", 5: "mam", 6: "jja", 7: "jja", 8: "jja"}
        year = day.year - 1 if day.month <= 2 else day.year  # a winter takes its December's year
        return f"{year:04d}-{names.get(day.month, 'son')}"
    if period == "tropical-season":
        year = day.year - 1 if day.month <= 4 else day.year  # November to April takes its November's year
        return f"{year:04d}-{'ndjfma' if day.month >= 11 or day.month <= 4 else 'mjjaso'}"
    if period == "year":
        return f"{day.year:04d}"
    if period == "decade":
        return f"{day.year - day.year % 10:04d}"
    return f"{day.year - (day.year - 1) % 10:04d}"  # decade-ad: 1 to 10


def _next_period(period: str, when: dt.datetime) -> dt.datetime:
    """The start of the period after the one ``when`` falls in."""
    label = period_label(when, period)
    step = (
        when.replace(minute=0, second=0, microsecond=0)
        if period == "hour"
        else when.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    delta = dt.timedelta(hours=1) if period == "hour" else dt.timedelta(days=1)
    while period_label(step, period) == label:
        step += delta
    return step


@process("aggregate_temporal_period")
def aggregate_temporal_period(data: Any, period: str, reducer: Any, dimension: str | None = None, context: Any = None) -> Any:
    cube = _cube(data, "aggregate_temporal_period")
    dim = temporal_dimension(cube, dimension, "aggregate_temporal_period")
    if period not in PERIODS:
        raise process_error(
            "ProcessParameterInvalid", f"The value passed for parameter 'period' is invalid: {period!r} is not supported here"
        )
    parsed = [_instant(str(label)) for label in labels_of(cube, dim)]
    instants = [d for d in parsed if d is not None]
    if not instants or len(instants) != len(parsed):
        return cube
    # Every period from the first observation's to the last's, in order; one without data is nodata.
    labels: list[str] = []
    when = min(instants)
    while when <= max(instants):
        labels.append(period_label(when, period))
        when = _next_period(period, when)
    axis = cube.axis(dim)
    moved = np.moveaxis(cube.values, axis, 0)
    out = np.full((len(labels), *moved.shape[1:]), np.nan)
    for k, label in enumerate(labels):
        members = [i for i, d in enumerate(instants) if period_label(d, period) == label]
        if not members:
            continue
        result = reducer(data=Labeled(moved[members], tuple(labels_of(cube, dim)[i] for i in members)), context=context)
        out[k] = _array_of(result, moved.shape[1:])
    return Raster(np.moveaxis(out, 0, axis), cube.grid, cube.dims, {**cube.labels, dim: tuple(labels)}, dict(cube.attrs))


# --- vector cubes ---------------------------------------------------------------------------------


# The back-end extension of aggregate_spatial (README): a GeoJSON foreign member asking for exact
# coverage, each pixel weighted by the share of its area inside the geometry (exactextract), as
# mt_stats' fields are with coverage "exact". Weights need a reducer that takes them.
COVERAGE_MEMBER = "eotasks:coverage"
WEIGHTED = ("mean", "sum", "count", "min", "max", "median")


@process("aggregate_spatial")
def aggregate_spatial(data: Any, geometries: Any, reducer: Any, target_dimension: str | None = None, context: Any = None) -> Any:
    """Per geometry, the reducer over the pixels whose centre is inside it (the definition's rule),
    for every label of the other dimensions; a geometry with no pixel centre gives no data. With
    ``"eotasks:coverage": "exact"`` in the GeoJSON, the pixels are weighted by coverage instead."""
    from eotasks.raster.aoi import centre_inside

    cube = _cube(data, "aggregate_spatial")
    if not isinstance(geometries, dict):
        raise process_error("ProcessParameterInvalid", "The value passed for parameter 'geometries' is invalid: GeoJSON expected")
    exact = geometries.get(COVERAGE_MEMBER) == "exact"
    reducer_id = getattr(reducer, "single_process", None)
    if exact and reducer_id not in WEIGHTED:
        raise process_error(
            "ProcessParameterInvalid",
            f"With {COVERAGE_MEMBER} exact the reducer must be one of {', '.join(WEIGHTED)} (pixels are weighted by coverage)",
        )
    shapes = geometries_of(geometries)
    other = cube.values.shape[:-2]
    out = np.full((len(shapes), *other), np.nan)
    flat = cube.values.reshape(*other, -1)
    for k, geometry in enumerate(shapes):
        shape_in = _shape_in(geometry, cube.grid.crs)
        if exact:
            out[k] = _weighted(flat, shape_in, cube.grid, reducer_id or "mean")
            continue
        inside = centre_inside(shape_in, cube.grid).ravel()
        if not inside.any():
            continue
        pixels = np.moveaxis(flat[..., inside], -1, 0)  # (pixels, *other): the reducer's array
        out[k] = _array_of(reducer(data=Labeled(pixels), context=context), other)
    dims = ("geometry", *cube.dims[:-2])
    labels = {d: tuple(cube.labels.get(d, ())) for d in cube.dims[:-2]}
    features = [{"type": "Feature", "properties": {}, "geometry": g} for g in shapes]
    return VectorCube(out, dims, labels, features)


def _weighted(flat: np.ndarray, shape_in_crs: Any, grid: Grid, reducer: str) -> np.ndarray:
    """The coverage-weighted reducer per label combination (``flat``: (*other, pixels)), with the
    statistics of mt_stats' fields (``eotasks.raster.stats``: exactextract's definitions)."""
    from eotasks.raster.coverage import exact_coverage
    from eotasks.raster.stats import grouped_summaries

    coverage = exact_coverage(shape_in_crs, grid.transform, grid.width, grid.height)
    rows = flat.reshape(-1, flat.shape[-1])[:, coverage.cells]
    out = np.full(rows.shape[0], np.nan)
    for i, values in enumerate(rows):
        keep = ~np.isnan(values) & (coverage.weights > 0)
        if not keep.any():
            continue
        st = grouped_summaries(values[keep], coverage.weights[keep], np.zeros(int(keep.sum()), np.int64), 1, [0.5])
        count, mean = float(st["count"][0]), float(st["average"][0])
        out[i] = {
            "mean": mean,
            "sum": mean * count,
            "count": count,
            "min": st["min"][0],
            "max": st["max"][0],
            "median": st["q0"][0],
        }[reducer]
    return out.reshape(flat.shape[:-1])


# --- in and out -----------------------------------------------------------------------------------


@process("load_collection", needs_env=True)
def load_collection(
    id: str,
    spatial_extent: Any,
    temporal_extent: Any,
    bands: list[str] | None = None,
    properties: Any = None,
    env: Any = None,
) -> Any:
    return env.load_collection(id, spatial_extent, temporal_extent, bands, properties)


@process("save_result", needs_env=True)
def save_result(data: Any, format: str, options: dict[str, Any] | None = None, env: Any = None) -> bool:
    env.save_result(data, format, options or {})
    return True
