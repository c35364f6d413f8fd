"""SPEC §6: statistics of per-pixel composites, one interval at a time, on one grid for all scenes.

For each interval, every scene's indices are computed on its own native grid, warped onto the
common grid (``resample``), masked where there is no clear observation, and folded into a running
composite (``eotasks.raster.composite``); the fields' statistics are then those of the composite,
with the same coverage weights and statistics code as a scene's (``eotasks.timeseries``). The
common grid is read in strips, so memory follows a strip (x the interval's scenes for ``median``),
never a whole year of arrays. Plain functions: no database, HTTP or Prefect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
from rasterio.enums import Resampling
from shapely.geometry import box

from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import SceneSkipped, UserError
from eotasks.raster import cloudmask
from eotasks.raster.aoi import to_crs
from eotasks.raster.composite import Composite
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster
from eotasks.raster.read import BandFiles, aoi_grid, coarsest
from eotasks.raster.warp import resampling_named
from eotasks.timeseries import (
    Field,
    IntervalRef,
    SceneOutcome,
    SceneRef,
    SkippedRow,
    StatsOptions,
    _Gathered,
    _outcome,
    compile_indices,
    grid_plan,
    mask_kind,
)

STRIP_PIXELS = 1 << 18  # the common grid is composited this many pixels at a time


def common_grid(records: Sequence[SceneRecord], sensors: Sequence[str], indices: Sequence[str], fields: Sequence[Field]) -> Grid:
    """SPEC §6's grid when the request names none: the native grid of the earliest scene of the
    first sensor (in the request's order) that has scenes, for the coarsest band the indices use,
    cut to the fields' bounds."""
    from shapely.ops import unary_union

    by_sensor = sorted(records, key=lambda r: (sensors.index(r.sensor) if r.sensor in sensors else len(sensors), r.date))
    first = by_sensor[0]
    assets = scene_assets(first)
    programs = compile_indices(first, indices, assets)
    band = coarsest(assets, [b for p in programs.values() for b in p.bands])
    with BandFiles(assets) as files:
        native = files.native_grid(band)
    union = unary_union([f.shape for f in fields])
    return aoi_grid(native, to_crs(union, native.crs))


@dataclass
class _SceneOnGrid:
    """One scene, opened for the interval: its programs, mask kind and files."""

    record: SceneRecord
    programs: dict
    kind: str | None
    files: BandFiles


def interval_statistics(
    first: str,
    last: str,
    records: Sequence[SceneRecord],
    indices: Sequence[str],
    fields: Sequence[Field],
    grid: Grid,
    options: StatsOptions,
    reducer: str,
    resample: str = "nearest",
) -> SceneOutcome:
    """Every field's statistics of the interval's composite on ``grid``, or why it is left out.
    Scenes are folded in date order; one that cannot be used (a band missing, a read failing)
    is left out of the composite and named in ``errors``."""
    out = SceneOutcome()
    records = sorted(records, key=lambda r: (r.date, r.view_id))
    if not records:
        for f in fields:
            out.skipped.append(SkippedRow(f.id, IntervalRef.of_interval(first, last, ()), "No scene in the interval"))
        return out
    plan = grid_plan(fields, grid, options.coverage)
    with ExitStack() as stack:
        scenes: list[_SceneOnGrid] = []
        for record in records:
            assets = scene_assets(record)
            try:
                programs = compile_indices(record, indices, assets)
            except SceneSkipped as exc:
                out.skipped.append(SkippedRow(None, IntervalRef.of_interval(first, last, (record.scene_id,)), exc.message))
                continue
            scenes.append(_SceneOnGrid(record, programs, mask_kind(record), stack.enter_context(BandFiles(assets))))
        kept = _drop_cloudy(scenes, plan, grid, options)
        ref = IntervalRef.of_interval(first, last, [s.record.scene_id for s in kept])
        got = _Gathered(len(fields), indices)
        got.met |= plan.met
        for row, col, height, width, start, stop in plan.windows:
            rows_per_strip = max(1, STRIP_PIXELS // max(width, 1))
            for top in range(0, height, rows_per_strip):
                strip = grid.block(row + top, col, min(rows_per_strip, height - top), width)
                planes = _composites(kept, strip, indices, options, reducer, resample)
                _gather(got, plan, start, stop, top, strip.height, width, planes)
    if not kept:
        for f in fields:
            out.skipped.append(SkippedRow(f.id, ref, "No scene of the interval could be used"))
        return out
    unmasked = all(s.kind is None for s in kept)
    # Every field's composite is kept whatever its cloud (scenes were filtered before compositing);
    # an interval's item always says how many pixels it had and lacked (SPEC §6).
    interval_options = dataclasses.replace(options, max_cloud_cover_in_aoi=100.0, richer=True)
    outcome = _outcome(ref, fields, got, interval_options, unmasked)
    for skipped in outcome.skipped:
        if skipped.error.startswith("No valid pixels"):
            skipped.error = "No clear pixel in the interval"
    out.rows.extend(outcome.rows)
    out.skipped.extend(outcome.skipped)
    return out


def scene_statistics_on_grid(
    record: SceneRecord,
    indices: Sequence[str],
    fields: Sequence[Field],
    grid: Grid,
    options: StatsOptions,
    resample: str = "nearest",
) -> SceneOutcome:
    """SPEC §5 for ``mt_stats`` without aggregation: one scene's statistics on the output grid, its
    indices computed on their native grids and warped onto ``grid`` (the warp and masks of the
    composites, with the scene as its own interval). A field the scene's footprint does not meet
    is not mentioned, as on the native grid."""
    from shapely.geometry import shape

    assets = scene_assets(record)
    programs = compile_indices(record, indices, assets)  # SceneSkipped (a UserError) names the reason
    plan = grid_plan(fields, grid, options.coverage)
    footprint = shape(record.footprint)
    got = _Gathered(len(fields), indices)
    got.met |= plan.met & np.array([footprint.intersects(f.shape) for f in fields], bool)
    with BandFiles(assets) as files:
        scene = _SceneOnGrid(record, programs, mask_kind(record), files)
        for row, col, height, width, start, stop in plan.windows:
            rows_per_strip = max(1, STRIP_PIXELS // max(width, 1))
            for top in range(0, height, rows_per_strip):
                strip = grid.block(row + top, col, min(rows_per_strip, height - top), width)
                try:
                    planes = _index_planes(scene, strip, indices, resample)
                except UserError:  # the scene does not cover this strip: its pixels are nodata
                    planes = np.full((len(indices), *strip.shape), np.nan)
                    usable = flags = np.zeros(strip.shape, bool)
                else:
                    usable, flags = _usable_on(scene, strip, options)
                _gather_scene(got, plan, start, stop, top, width, planes, usable, flags, options.exclude_cover_pixels)
    return _outcome(SceneRef.of(record), fields, got, options, unmasked=scene.kind is None)


def _usable_on(scene: _SceneOnGrid, strip: Grid, options: StatsOptions) -> tuple[np.ndarray, np.ndarray]:
    """(usable, flagged) on ``strip``: classified with data, and flagged as cover at the level."""
    if scene.kind is None:
        return np.ones(strip.shape, bool), np.zeros(strip.shape, bool)
    classes, ok = _classes_on(scene, strip)
    usable = ok & cloudmask.usable(scene.kind, classes)
    return usable, cloudmask.flagged(scene.kind, classes, options.cloud_masking_level) & usable


def _gather_scene(
    got: _Gathered,
    plan,
    start: int,
    stop: int,
    top: int,
    width: int,
    planes: np.ndarray,
    usable: np.ndarray,
    flags: np.ndarray,
    exclude: bool,
) -> None:
    """One scene's strip fed to the statistics: what the native gather of ``scene_statistics`` does,
    on the rows of the plan's window that fall in the strip."""
    local = plan.local[start:stop]
    weight, owner = plan.weights[start:stop], plan.field[start:stop]
    rows, cols = np.divmod(local, width)
    sel = (rows >= top) & (rows < top + planes.shape[1])
    idx = (rows[sel] - top) * width + cols[sel]
    w, g = weight[sel], owner[sel]
    u, f = usable.ravel()[idx], flags.ravel()[idx]
    got.usable += np.bincount(g, np.where(u, w, 0.0), got.n)
    got.flagged += np.bincount(g, np.where(f, w, 0.0), got.n)
    for k, index in enumerate(got.indices):
        v = planes[k].ravel()[idx]
        keep = ~np.isnan(v) & u
        if exclude:
            keep &= ~f
        got.parts[index].append((v[keep], w[keep], g[keep]))
        got.left[index] += np.bincount(g, np.where(keep, 0.0, w), got.n)


def _drop_cloudy(scenes: list[_SceneOnGrid], plan, grid: Grid, options: StatsOptions) -> list[_SceneOnGrid]:
    """Scenes whose cloud over the fields' pixels is above ``max_cloud_cover_in_aoi`` are left out
    before compositing (SPEC §6); without a threshold every scene is kept."""
    if options.max_cloud_cover_in_aoi >= 100:
        return scenes
    kept = []
    for scene in scenes:
        if scene.kind is None:
            kept.append(scene)
            continue
        usable = flagged = 0.0
        for row, col, height, width, start, stop in plan.windows:
            try:
                classes, ok = _classes_on(scene, grid.block(row, col, height, width))
            except UserError:
                continue  # the scene does not cover this window
            u = ok & cloudmask.usable(scene.kind, classes)
            f = cloudmask.flagged(scene.kind, classes, options.cloud_masking_level) & u
            local, weight = plan.local[start:stop], plan.weights[start:stop]
            usable += float(np.where(u.ravel()[local], weight, 0).sum())
            flagged += float(np.where(f.ravel()[local], weight, 0).sum())
        if usable == 0 or 100.0 * flagged / usable <= options.max_cloud_cover_in_aoi:
            kept.append(scene)
    return kept


def _classes_on(scene: _SceneOnGrid, target: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The scene's mask classes on ``target`` (nearest) and where they have data."""
    band = scene.record.mask_band or ""
    native = scene.files.native_grid(band)
    if native.crs == target.crs and native.resolution == target.resolution:
        return scene.files.read_classes(band, target)
    covering = _covering(native, target)
    classes, ok = scene.files.read_classes(band, covering)
    raster = Raster(np.where(ok, classes, np.nan)[None].astype(np.float64), covering, ("bands", "y", "x"), {"bands": (band,)})
    warped = raster.warp(target, Resampling.nearest).values[0]
    seen = ~np.isnan(warped)
    return np.where(seen, warped, 0).astype(classes.dtype), seen


def _covering(native: Grid, target: Grid, margin: int = 3) -> Grid:
    from rasterio.warp import transform_bounds

    minx, miny, maxx, maxy = transform_bounds(target.crs, native.crs, *target.bounds, densify_pts=21)
    rx, ry = native.resolution
    return aoi_grid(native, box(minx - margin * rx, miny - margin * ry, maxx + margin * rx, maxy + margin * ry))


def _index_planes(scene: _SceneOnGrid, target: Grid, indices: Sequence[str], resample: str) -> np.ndarray:
    """The scene's indices on ``target``: each computed on its bands' native grid, then warped."""
    planes = np.full((len(indices), *target.shape), np.nan)
    for k, index in enumerate(indices):
        program = scene.programs[index]
        band = coarsest(scene.files.assets, program.bands)
        native = scene.files.native_grid(band)
        same = native.crs == target.crs and native.resolution == target.resolution
        source = target if same else _covering(native, target)
        values = scene.files.read(list(program.bands), source).evaluate([program])
        planes[k] = values.values[0] if same else values.warp(target, resampling_named(resample)).values[0]
    return planes


def _composites(
    scenes: list[_SceneOnGrid], strip: Grid, indices: Sequence[str], options: StatsOptions, reducer: str, resample: str
) -> np.ndarray:
    """(indices, y, x) composites over ``strip``: a pixel's observation is a finite index value
    where the mask says usable and (with ``exclude_cover_pixels``) not flagged."""
    acc = [Composite(reducer, strip.shape) for _ in indices]
    for scene in scenes:
        try:
            planes = _index_planes(scene, strip, indices, resample)
        except UserError:
            continue  # an unreadable strip of one scene: that scene gives no observation there
        if scene.kind is not None:
            classes, ok = _classes_on(scene, strip)
            clear = ok & cloudmask.usable(scene.kind, classes)
            if options.exclude_cover_pixels:
                clear &= ~cloudmask.flagged(scene.kind, classes, options.cloud_masking_level)
            planes[:, ~clear] = np.nan
        for k in range(len(indices)):
            acc[k].add(planes[k])
    return np.stack([a.result() for a in acc])


def _gather(got: _Gathered, plan, start: int, stop: int, top: int, height: int, width: int, planes: np.ndarray) -> None:
    """The cells of the plan's window (``start:stop``) in the strip of ``height`` rows from its row
    ``top``, fed to the statistics. ``cloud`` becomes the share of a field's weight with no clear
    observation in the interval (on a composite every pixel counts as classified)."""
    local = plan.local[start:stop]
    weight, owner = plan.weights[start:stop], plan.field[start:stop]
    rows, cols = np.divmod(local, width)
    sel = (rows >= top) & (rows < top + height)
    idx = (rows[sel] - top) * width + cols[sel]
    w, g = weight[sel], owner[sel]
    first = planes[0].ravel()[idx]
    got.usable += np.bincount(g, w, got.n)
    got.flagged += np.bincount(g, np.where(np.isnan(first), w, 0.0), got.n)
    for k, index in enumerate(got.indices):
        v = planes[k].ravel()[idx]
        keep = ~np.isnan(v)
        got.parts[index].append((v[keep], w[keep], g[keep]))
        got.left[index] += np.bincount(g, np.where(keep, 0.0, w), got.n)
