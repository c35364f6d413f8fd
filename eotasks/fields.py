"""Statistics of many fields in one scene, from one read of each band, block by block.

The fields a scene meets are laid on the scene's own grid once (their coverage: which pixels, with
what weight; ``eotasks.raster.coverage``) and that coverage is kept for every other scene on the same
grid (every date of a tile). The scene's bands are then read in blocks of ``BLOCK`` x ``BLOCK`` pixels,
only where some field has pixels, so memory is one block plus the fields' own pixels however the
fields are spread over the tile. Each block's index values feed every field that has pixels in it.

With ``coverage="centre"`` a field's pixels and values are exactly a one-field request's (same
rasterisation, same grid, same resampling); with ``"exact"`` each pixel weighs the fraction of its
area inside the field (exactextract's coverage).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.raster import cloudmask
from eotasks.raster.aoi import to_crs
from eotasks.raster.bandmath import evaluate_program
from eotasks.raster.coverage import Coverage, centre_coverage, exact_coverage
from eotasks.raster.crop import Cropped, Grid, open_band, read_open_band
from eotasks.raster.stats import grouped_histograms, grouped_summaries
from eotasks.timeseries import compile_items, mask_kind

BLOCK = 512
_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class FieldOptions:
    coverage: str = "centre"  # or "exact"
    percentiles: tuple[float, ...] = ()
    histogram_edges: tuple[float, ...] | None = None
    cloud_masking_level: int = 1
    exclude_cover_pixels: bool = True
    max_cloud_cover_in_aoi: float = 100.0


class _CoverageCache:
    """(field, grid, rule) -> Coverage, shared by the threads of a run: a tile's dates share a grid."""

    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()
        self.making = threading.RLock()  # one thread computes a missing entry; the others wait for it

    def _lookup(self, key: tuple):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return True, self.items[key]
        return False, None

    def get(self, key: tuple, make):
        found, value = self._lookup(key)
        if found:
            return value
        # The scenes of a request start together on several threads, all on the same grid: without
        # this, each would lay the same fields on it (the costliest part of a scene) at the same time.
        with self.making:
            found, value = self._lookup(key)
            if found:
                return value
            value = make()
            with self.lock:
                self.items[key] = value
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return value


COVERAGE = _CoverageCache(_CACHE_SIZE)


def field_coverages(fields: list[tuple[Any, BaseGeometry]], grid: Grid, rule: str) -> list[Coverage]:
    """Each field's coverage of ``grid``, from the cache when this field met this grid before (the
    key is the field's shape itself, so two requests with the same field share it)."""
    transform = tuple(grid.transform)[:6]
    out = []
    for _, geom in fields:
        def make(geom: BaseGeometry = geom) -> Coverage:
            in_crs = to_crs(geom, grid.crs)
            compute = exact_coverage if rule == "exact" else centre_coverage
            return compute(in_crs, grid.transform, grid.width, grid.height)
        out.append(COVERAGE.get((geom.wkb, grid.crs, transform, grid.width, grid.height, rule), make))
    return out


@dataclass(frozen=True)
class GridPlan:
    """All fields' pixels on one grid, grouped by read block: what each block feeds."""

    cells: np.ndarray  # int64 flat indices into the grid
    weights: np.ndarray  # float64
    field: np.ndarray  # int64 field index of each cell
    blocks: list[tuple[int, int, int]]  # (block id, start, stop) into the arrays above
    met: np.ndarray  # bool per field: it has pixels on this grid
    blocks_across: int


PLANS = _CoverageCache(64)


def grid_plan(fields: list[tuple[Any, BaseGeometry]], grid: Grid, rule: str) -> GridPlan:
    """The fields' coverage of ``grid``, ordered by block: computed once per grid (each field's
    coverage itself is cached even across requests), reused for every date on that grid."""
    key = (tuple((fid, g.bounds) for fid, g in fields), grid.crs, tuple(grid.transform)[:6], grid.width, grid.height, rule)

    def make() -> GridPlan:
        covs = field_coverages(fields, grid, rule)
        met = np.array([c.cells.size > 0 for c in covs], bool)
        cells = np.concatenate([c.cells for c in covs] or [np.zeros(0, np.int64)])
        weights = np.concatenate([c.weights for c in covs] or [np.zeros(0)])
        field = np.repeat(np.arange(len(covs)), [c.cells.size for c in covs])
        across = (grid.width + BLOCK - 1) // BLOCK
        rows, cols = np.divmod(cells, grid.width)
        block = (rows // BLOCK) * across + cols // BLOCK
        order = np.argsort(block, kind="stable")
        cells, weights, field, block = cells[order], weights[order], field[order], block[order]
        ids, starts = np.unique(block, return_index=True)
        stops = np.append(starts[1:], block.size)
        return GridPlan(cells, weights, field, [(int(i), int(a), int(b)) for i, a, b in zip(ids, starts, stops)], met, across)

    return PLANS.get(key, make)


def scene_fields_statistics(record: SceneRecord, items: list[str], fields: list[tuple[Any, BaseGeometry]],
                            options: FieldOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(result items, error items) of every field that meets the scene; fields it does not meet
    are not mentioned (the flow reports a field no scene met)."""
    assets = scene_assets(record)
    programs = compile_items(record, items, assets)  # SceneSkipped (a UserError) names the reason
    groups: dict[float, list[str]] = {}
    for item, program in programs.items():
        groups.setdefault(max(assets[b].resolution for b in program.bands), []).append(item)
    kind = mask_kind(record)
    n = len(fields)
    met = np.zeros(n, bool)
    usable_w = np.zeros(n)
    flagged_w = np.zeros(n)
    gathered: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {item: [] for item in items}
    left = {item: np.zeros(n) for item in items}
    first = True
    with ExitStack() as files:  # each band's file is opened once, for all its blocks
        opened: dict[str, rasterio.DatasetReader] = {}

        def dataset(band: str) -> rasterio.DatasetReader:
            if band not in opened:
                opened[band] = files.enter_context(open_band(assets[band].href))
            return opened[band]

        def read(band: str, block: Grid, resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
            return read_open_band(dataset(band), assets[band], block, resampling, band)

        for resolution, group in sorted(groups.items()):
            bands = list(dict.fromkeys(b for item in group for b in programs[item].bands))
            reference = max(bands, key=lambda b: assets[b].resolution)
            src = dataset(reference)
            grid = Grid(src.crs.to_string(), src.transform, src.width, src.height)
            plan = grid_plan(fields, grid, options.coverage)
            met |= plan.met
            for block_id, start, stop in plan.blocks:
                br, bc = divmod(block_id, plan.blocks_across)
                r0, c0 = br * BLOCK, bc * BLOCK
                h, w = min(BLOCK, grid.height - r0), min(BLOCK, grid.width - c0)
                block = Grid(grid.crs, grid.transform * Affine.translation(c0, r0), w, h)
                data, valid = {}, {}
                for band in bands:
                    data[band], valid[band] = read(band, block, Resampling.average)
                cropped = Cropped(block, data, valid, np.ones((h, w), bool), {b: assets[b] for b in bands})
                if kind is not None:
                    mask, mask_valid = read(record.mask_band, block, Resampling.nearest)
                    usable = mask_valid & cloudmask.usable(kind, mask)
                    flags = cloudmask.flagged(kind, mask, options.cloud_masking_level) & usable
                else:
                    usable = np.ones((h, w), bool)
                    flags = np.zeros((h, w), bool)
                rows, cols = np.divmod(plan.cells[start:stop], grid.width)
                local = (rows - r0) * w + (cols - c0)
                weight, field = plan.weights[start:stop], plan.field[start:stop]
                u, f = usable.ravel()[local], flags.ravel()[local]
                if first:
                    usable_w += np.bincount(field[u], weight[u], n)
                    flagged_w += np.bincount(field[f], weight[f], n)
                values_cache: dict[str, np.ndarray] = {}
                for item in group:
                    values, ok = evaluate_program(programs[item], cropped, values_cache)
                    keep = ok.ravel()[local] & u
                    if options.exclude_cover_pixels:
                        keep &= ~f
                    gathered[item].append((values.ravel()[local][keep], weight[keep], field[keep]))
                    left[item] += np.bincount(field[~keep], weight[~keep], n)
            first = False
    return _answers(record, items, fields, met, usable_w, flagged_w, gathered, left, options, kind is None)


def _answers(record: SceneRecord, items: list[str], fields: list[tuple[Any, BaseGeometry]], met: np.ndarray, usable_w: np.ndarray,
             flagged_w: np.ndarray, gathered: dict[str, list], left: dict[str, np.ndarray], options: FieldOptions,
             unmasked: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = len(fields)
    whole = options.coverage == "centre"  # counts are pixels, not sums of weights
    qs = [0.10, 0.25, 0.50, 0.75, 0.90, *[p / 100.0 for p in options.percentiles]]
    stats, hists = {}, {}
    for item in items:
        parts = gathered[item]
        v = np.concatenate([p[0] for p in parts] or [np.zeros(0)])
        w = np.concatenate([p[1] for p in parts] or [np.zeros(0)])
        g = np.concatenate([p[2] for p in parts] or [np.zeros(0, np.int64)])
        stats[item] = grouped_summaries(v, w, g, n, qs)
        if options.histogram_edges is not None:
            hists[item] = grouped_histograms(v, w, g, n, list(options.histogram_edges))
    # min(): the flagged weights are a subset of the usable ones, summed in another order (a fully
    # clouded field must not come out at 100.00000000000001 % and be refused at a 100 % threshold).
    with np.errstate(invalid="ignore", divide="ignore"):
        cloud = np.where(usable_w > 0, np.minimum(100.0, 100.0 * flagged_w / np.where(usable_w > 0, usable_w, 1)), 0.0)
    results, errors = [], []
    base = {"date": record.date.isoformat(), "scene_id": record.scene_id, "view_id": record.view_id}
    conv = (lambda x: int(round(x))) if whole else float
    edges = [float(e) for e in options.histogram_edges] if options.histogram_edges is not None else None
    # Python lists once per statistic: a thousand fields' dictionaries are built from plain floats.
    lists = {item: {k: a.tolist() for k, a in stats[item].items()} for item in items}
    lefts = {item: left[item].tolist() for item in items}
    hist_lists = {item: tuple(a.tolist() for a in hists[item]) for item in hists}
    cloud_l, met_l = cloud.tolist(), met.tolist()
    for i, (fid, _) in enumerate(fields):
        if not met_l[i]:
            continue
        if cloud_l[i] > options.max_cloud_cover_in_aoi:
            errors.append({"status": False, "field_id": fid, **base,
                           "error": f"Cloud cover in the field is {cloud_l[i]:.1f} %, above max_cloud_cover_in_aoi {options.max_cloud_cover_in_aoi:g}"})
            continue
        if any(not lists[item]["count"][i] > 0 for item in items):
            errors.append({"status": False, "field_id": fid, **base, "error": "No valid pixels in the field"})
            continue
        indexes = {}
        for item in items:
            st = lists[item]
            variance = st["variance"][i]
            one: dict[str, Any] = {"min": st["min"][i], "max": st["max"][i], "average": st["average"][i],
                                   "median": st["q2"][i], "std": math.sqrt(variance), "variance": variance,
                                   "q1": st["q1"][i], "q3": st["q3"][i], "p10": st["q0"][i], "p90": st["q4"][i],
                                   "count": conv(st["count"][i]), "nodata_count": conv(lefts[item][i])}
            if options.percentiles:
                one["percentiles"] = {f"{p:g}": st[f"q{5 + k}"][i] for k, p in enumerate(options.percentiles)}
            if edges is not None:
                counts, under, over = hist_lists[item]
                one["histogram"] = {"edges": edges, "counts": [conv(c) for c in counts[i]], "underflow": conv(under[i]), "overflow": conv(over[i])}
            indexes[item] = one
        out = {"field_id": fid, **base, "cloud": cloud_l[i], "indexes": indexes}
        if unmasked:
            out["unmasked"] = True
        results.append(out)
    return results, errors
