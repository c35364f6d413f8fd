"""A task's costs, from its parameters and the catalogue, counted before anything is read.

Used by the gateway at submission (over a limit is a 400 naming the field that drives it and the
limit) and by the flows' first steps (a run created some other way, or a catalogue that changed,
is refused before its first read). What is bounded, each with its setting:

- pixels read: pixels x bands of the read windows (``EOTASKS_MAX_READ_PIXELS``);
- picture size of ``jpeg`` (``EOTASKS_MAX_OUTPUT_PIXELS``);
- memory a run holds: the bands read (float64 values), every output band (float32), a picture's
  warped values, and for ``mt_stats`` the values every field keeps for its statistics, times the
  scenes worked on at once (``EOTASKS_MAX_TASK_MEMORY_MB``);
- the answer's size for ``mt_stats`` (``EOTASKS_MAX_ANSWER_MB`` for a file answer,
  ``EOTASKS_MAX_INLINE_ANSWER_MB`` for the JSON a single AOI answers with).

The counting itself is plain raster code (``eotasks.raster.cost``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eotasks.errors import UserError
from eotasks.raster.cost import (
    BYTES_INDEX,
    BYTES_OUTPUT,
    BYTES_PICTURE,
    BYTES_RAW,
    BYTES_SORT_PIXEL,
    BYTES_STATS_PIXEL,
    BYTES_VALUE,
    check_read_budget,
    parts_pixels,
    read_pixels,
)
from eotasks.settings import get_settings

if TYPE_CHECKING:
    from eotasks.db import SceneRecord
    from eotasks.models import MtStatsParams
    from eotasks.raster.grid import Grid
    from eotasks.sensors import Sensor

MB = 1 << 20


def aoi_of(params: Any) -> BaseGeometry | None:
    """The AOI in lon/lat, a cropper_ref resolved from the database; None for the whole scene."""
    ref = getattr(params, "cropper_ref", None)
    if ref is not None:
        from eotasks.db import CropperRecord, session

        with session() as s:
            record = s.get(CropperRecord, ref)
        if record is None:
            raise UserError(f"Unknown cropper_ref {ref}", field="params.cropper_ref")
        return shape(record.geometry)
    return params.aoi_shape()


def aoi_field(params: Any) -> str:
    for name in ("geometry", "bbox", "cropper_ref", "fields"):
        if getattr(params, name, None) is not None:
            return f"params.{name}"
    return "params.view_id"  # no AOI: the whole scene


def scene_task_bands(task_type: str, params: Any, sensor: Sensor) -> list[str]:
    from eotasks.raster.indices import bands_of, compile_expressions

    if task_type == "lbe":
        return [sensor.resolve_band(b) or b for b in params.bands]
    return bands_of(compile_expressions(params.bm_type, sensor, get_settings().max_expression_chars))


def check_memory(estimate: float, field: str, what: str) -> None:
    limit = get_settings().max_task_memory_mb
    if estimate > limit * MB:
        raise UserError(
            f"The task would hold about {estimate / MB:,.0f} MB in memory ({what}), more than the limit of {limit:,} MB; "
            "use a smaller area of interest, fewer bands or expressions, or several tasks",
            field=field,
        )


def check_scene_task(task_type: str, params: Any, scene: SceneRecord, aoi: BaseGeometry | None) -> None:
    """bandmath, lbe, jpeg: the read window over the AOI's bounds (the output covers them) x bands,
    jpeg's picture size, and the memory of the whole run, before any read."""
    from eotasks.catalog.scenes import scene_assets
    from eotasks.raster.indices import compile_expressions
    from eotasks.sensors import SENSORS

    check_aoi_meets_scene(params, scene, aoi)
    check_metadata_names(params, scene)
    settings = get_settings()
    sensor = SENSORS[scene.sensor]
    assets = scene_assets(scene)
    bands = [b for b in scene_task_bands(task_type, params, sensor) if b in assets]
    resolutions = [assets[b].resolution for b in bands]
    pixels = read_pixels(scene.crs, scene.footprint, resolutions, aoi, per_part=False)
    check_read_budget(pixels, settings.max_read_pixels, aoi_field(params))
    coarsest = max(resolutions, default=10.0)
    out_px = read_pixels(scene.crs, scene.footprint, [coarsest], aoi, per_part=False)
    if task_type == "lbe":
        memory = pixels * BYTES_RAW
        check_memory(memory, aoi_field(params), f"{len(bands)} band(s) over {out_px:,} pixels")
        check_output_grid(task_type, params, scene, aoi, len(bands))
        return
    outputs = len(compile_expressions(params.bm_type, sensor, settings.max_expression_chars))
    memory = pixels * BYTES_VALUE + outputs * out_px * BYTES_OUTPUT
    if task_type == "jpeg":
        from eotasks.raster.warp import aoi_pixels

        px = params.px_size or coarsest
        picture = aoi_pixels(aoi if aoi is not None else shape(scene.footprint), px)
        if picture > settings.max_output_pixels:
            raise UserError(
                f"px_size {px} m gives a picture of {picture:,} pixels for this AOI, more than the limit of "
                f"{settings.max_output_pixels:,}; use a larger px_size",
                field="params.px_size",
            )
        memory += picture * (outputs * BYTES_INDEX + BYTES_PICTURE)
    field = "params.bm_type" if outputs * out_px * BYTES_OUTPUT > pixels * BYTES_VALUE else aoi_field(params)
    check_memory(memory, field, f"{len(bands)} band(s) read and {outputs} output band(s) over {out_px:,} pixels")
    check_output_grid(task_type, params, scene, aoi, outputs)


def output_grid_of(task_type: str, params: Any, scene: SceneRecord, aoi: BaseGeometry | None) -> Grid | None:
    """SPEC §5's grid for this request on this scene; None when the request asks for none (the
    scene's own grid, as before). The default resolution keeps the native pixel count of the
    coarsest band the task uses."""
    if not getattr(params, "output_requested", False):
        return None
    from eotasks.catalog.scenes import scene_assets
    from eotasks.raster.aoi import to_crs
    from eotasks.raster.grid import matching_resolution, output_grid
    from eotasks.sensors import SENSORS

    crs = params.crs or params.default_output_crs or scene.crs
    region = aoi if aoi is not None else shape(scene.footprint)
    bounds = to_crs(region, crs).bounds
    resolution = params.resolution_xy
    if resolution is None and params.width is None and params.height is None:
        assets = scene_assets(scene)
        used = [b for b in scene_task_bands(task_type, params, SENSORS[scene.sensor]) if b in assets]
        native = max((assets[b].resolution for b in used), default=10.0)
        resolution = matching_resolution(scene.crs, native, to_crs(region, scene.crs).bounds, crs)
    return output_grid(bounds, crs, resolution=resolution, width=params.width, height=params.height)


def _grid_field(params: Any) -> str:
    return next(f"params.{n}" for n in ("resolution", "width", "height", "crs") if getattr(params, n) is not None)


def _too_fine(params: Any) -> UserError:
    """A resolution so small that the pixel count is not even a finite number."""
    return UserError(
        "The output grid would have more pixels than can be counted; use a coarser resolution", field=_grid_field(params)
    )


def check_output_grid(task_type: str, params: Any, scene: SceneRecord, aoi: BaseGeometry | None, outputs: int) -> None:
    try:
        grid = output_grid_of(task_type, params, scene, aoi)
    except (OverflowError, ValueError, ZeroDivisionError):
        raise _too_fine(params) from None
    if grid is None:
        return
    total = check_grid_pixels(grid, outputs, "band(s)", params)
    check_memory(total * BYTES_VALUE, _grid_field(params), f"{outputs} band(s) over {grid.pixels:,} output pixels")


def check_grid_pixels(grid: Grid, outputs: int, what: str, params: Any) -> int:
    """The output grid's pixels x ``outputs`` within ``max_output_pixels`` (a 400 naming the grid's
    parameter); the total."""
    limit = get_settings().max_output_pixels
    total = grid.pixels * max(outputs, 1)
    if total > limit:
        raise UserError(
            f"The output grid of {grid.width} x {grid.height} pixels x {outputs} {what} is {total:,} pixels, more than "
            f"the limit of {limit:,}; use a coarser resolution or fewer pixels",
            field=_grid_field(params),
        )
    return total


def check_aoi_meets_scene(params: Any, scene: SceneRecord, aoi: BaseGeometry | None) -> None:
    """An AOI that misses the scene's footprint would crop nothing: a 400 with the scene's extent,
    and the likely mistake when the AOI with longitude and latitude swapped would meet it."""
    if aoi is None:
        return
    footprint = shape(scene.footprint)
    if aoi.intersects(footprint):
        return
    from shapely.ops import transform

    extent = f"{scene.west:.4f}, {scene.south:.4f}, {scene.east:.4f}, {scene.north:.4f}"
    hint = ""
    if transform(lambda x, y: (y, x), aoi).intersects(footprint):
        hint = "; with longitude and latitude swapped it would: GeoJSON and bbox are [longitude, latitude]"
    raise UserError(
        f"The AOI does not meet scene {scene.view_id}, whose footprint spans [{extent}] (west, south, east, north){hint}",
        field=aoi_field(params),
    )


def check_metadata_names(params: Any, scene: SceneRecord) -> None:
    names = getattr(params, "metadata", None) or []
    unknown = [n for n in names if n not in (scene.metadata_files or {})]
    if unknown:
        have = ", ".join(sorted(scene.metadata_files or {})) or "none"
        raise UserError(
            f"Scene {scene.view_id} has no metadata file {', '.join(map(repr, unknown))}; it has: {have}",
            field="params.metadata",
        )


def _utm_crs(aoi: BaseGeometry) -> str:
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    minx, miny, maxx, maxy = aoi.bounds
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(minx, miny, maxx, maxy))
    return f"EPSG:{infos[0].code}" if infos else "EPSG:3857"


def check_time_series_task(params: MtStatsParams, aoi: BaseGeometry) -> None:
    """mt_stats, before any read: per scene, each AOI part's window x the bands of its indices and
    mask, at the sensor's own resolutions (in the part's UTM zone; the scenes are not known yet);
    the memory the fields' values need, times the scenes worked on at once; the answer's size."""
    from eotasks.raster.indices import bands_of, compile_expressions
    from eotasks.sensors import OPTICAL_SENSORS, sensor_by_name

    settings = get_settings()
    indices = [params.bm_type] if isinstance(params.bm_type, str) else list(params.bm_type)
    minx, miny, maxx, maxy = aoi.bounds
    crs = _utm_crs(aoi)
    footprint = {"type": "Polygon", "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]]}
    worst_read, worst_memory = 0, 0.0
    shapes = [g for _, g in params.field_shapes()] if params.fields is not None else [aoi]
    parts = [p for g in shapes for p in getattr(g, "geoms", [g])]
    field_px: dict[float, int] = {}  # by resolution: the same for every sensor that has it
    for name in params.sensors or OPTICAL_SENSORS:
        sensor = sensor_by_name(name)
        if sensor is None:
            continue
        bands: list[str] = []
        computable = 0
        finest = float("inf")
        for index in indices:
            try:
                used = bands_of(compile_expressions(index, sensor, settings.max_expression_chars, 1))
            except Exception:
                continue  # this sensor cannot compute it: its scenes will not be read for it
            bands += used
            computable += 1
            finest = min(finest, max(sensor.band(b).resolution for b in used))
        if sensor.mask_band:
            bands.append(sensor.mask_band)
        resolutions = [sensor.band(b).resolution for b in dict.fromkeys(bands)]
        worst_read = max(worst_read, read_pixels(crs, footprint, resolutions, aoi, per_part=True))
        if computable:
            if finest not in field_px:
                field_px[finest] = parts_pixels(parts, crs, finest)
            worst_memory = max(worst_memory, field_px[finest] * (computable * BYTES_STATS_PIXEL + BYTES_SORT_PIXEL))
    check_read_budget(worst_read, settings.max_read_pixels, aoi_field(params))
    if params.output_requested and (params.resolution is not None or params.width or params.height):
        # SPEC §5 on the composites' grid: its pixels x indices within the output limit.
        from eotasks.raster.aoi import to_crs
        from eotasks.raster.grid import output_grid

        crs = params.output_crs or crs  # without one, the AOI's UTM zone stands for the scenes' CRS
        try:
            grid = output_grid(
                to_crs(aoi, crs).bounds, crs, resolution=params.resolution_xy, width=params.width, height=params.height
            )
        except (OverflowError, ValueError, ZeroDivisionError):
            raise _too_fine(params) from None
        check_grid_pixels(grid, len(indices), "index(es)", params)
    if params.aggregation is not None and params.aggregation.composite == "median":
        # A median keeps every scene's strip of the common grid (eotasks/aggregate.py).
        from eotasks.aggregate import STRIP_PIXELS

        check_memory(
            params.limit * STRIP_PIXELS * 8 * len(indices),
            "params.limit",
            f"a median over up to {params.limit} scenes ({len(indices)} index(es))",
        )
    concurrent = max(1, settings.mt_stats_workers)
    check_memory(
        worst_memory * concurrent,
        aoi_field(params),
        f"the values of {len(shapes):,} area(s) for {len(indices)} index(es), {concurrent} scenes at a time",
    )
    check_answer_size(params, aoi, shapes, indices)


# --- the answer's size -----------------------------------------------------------------------------

# Bytes of JSON per part of an answer item (CSV is smaller): measured on real answers, rounded up.
ITEM_BYTES = 140  # ids, date, cloud, separators (and field_id)
STATS_BYTES = 260  # the ten statistics
COUNT_BYTES = 40  # count and nodata_count
PERCENTILE_BYTES = 30
EDGE_BYTES = 24
BIN_BYTES = 10


def stats_bytes(params: MtStatsParams) -> tuple[int, int, int]:
    """Bytes of one index's statistics: (all of it, its percentiles, its histogram)."""
    percentiles = len(params.percentiles or ()) * PERCENTILE_BYTES
    histogram = 0
    if params.histogram is not None:
        bins = len(params.histogram.bin_edges()) - 1
        histogram = (bins + 1) * EDGE_BYTES + bins * BIN_BYTES + 60
    return STATS_BYTES + (COUNT_BYTES if params.richer else 0) + percentiles + histogram, percentiles, histogram


def scene_field_pairs(params: MtStatsParams, aoi: BaseGeometry, shapes: Sequence[BaseGeometry]) -> tuple[int, int]:
    """(scenes the request will read, field-scene pairs it will answer for), from the catalogue: the
    scenes the search will find, and for each the fields its footprint meets."""
    from shapely import STRtree

    from eotasks.catalog.search import search_scenes
    from eotasks.sensors import OPTICAL_SENSORS

    scenes, _ = search_scenes(
        list(params.sensors or OPTICAL_SENSORS),
        [(params.date_start, params.date_end)],
        aoi,
        newest_first=True,
        limit=params.limit,
    )
    if len(shapes) == 1:
        return len(scenes), len(scenes)
    tree = STRtree(list(shapes))
    pairs = sum(len(tree.query(shape(s.footprint), predicate="intersects")) for s in scenes)
    return len(scenes), pairs


def check_answer_size(params: MtStatsParams, aoi: BaseGeometry, shapes: Sequence[BaseGeometry], indices: list[str]) -> None:
    settings = get_settings()
    scenes, pairs = scene_field_pairs(params, aoi, shapes)
    per_index, percentiles, histogram = stats_bytes(params)
    size = pairs * (ITEM_BYTES + len(indices) * per_index)
    inline = params.fields is None
    limit_mb = settings.max_inline_answer_mb if inline else settings.max_answer_mb
    if size <= limit_mb * MB:
        return
    # The parameter that drives it: the one whose smallest value would shrink the answer most.
    shrink = {
        "params.histogram": (per_index / (per_index - histogram)) if histogram else 1.0,
        "params.percentiles": (per_index / (per_index - percentiles)) if percentiles else 1.0,
        "params.bm_type": float(len(indices)),
        "params.fields": pairs / max(scenes, 1) if not inline else 1.0,
        "params.date_end": float(scenes),
    }
    field = max(shrink, key=lambda k: shrink[k])
    hint = {
        "params.histogram": "fewer histogram bins",
        "params.percentiles": "fewer percentiles",
        "params.bm_type": "fewer indices",
        "params.fields": "fewer fields per request",
        "params.date_end": "fewer scenes (a shorter date range or a lower limit)",
    }[field]
    kind = "JSON answer of a single AOI" if inline else "answer file"
    raise UserError(
        f"The {kind} would be about {size / MB:,.0f} MB ({pairs:,} field-scene pair(s) x {len(indices)} index(es)), more "
        f"than the limit of {limit_mb:,} MB; ask for {hint}" + ("" if not inline else ", or send the AOI as fields"),
        field=field,
    )
