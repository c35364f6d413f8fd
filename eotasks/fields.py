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

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from eotasks.assets import open_asset
from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import UserError
from eotasks.raster import cloudmask
from eotasks.raster.aoi import to_crs
from eotasks.raster.bandmath import evaluate_program
from eotasks.raster.coverage import Coverage, centre_coverage, exact_coverage
from eotasks.raster.crop import Asset, Cropped, Grid, read_onto_grid
from eotasks.raster.indices import Program, compile_expressions
from eotasks.raster.stats import weighted_histogram, weighted_summary
from eotasks.sensors import SENSORS
from eotasks.timeseries import mask_kind

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
        self.hits = self.misses = 0

    def get(self, key: tuple, make) -> Coverage:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                self.hits += 1
                return self.items[key]
        value = make()
        with self.lock:
            self.misses += 1
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


COVERAGE = _CoverageCache(_CACHE_SIZE)


def scene_grid(asset: Asset) -> Grid:
    with open_asset(asset.href) as src:
        return Grid(src.crs.to_string(), src.transform, src.width, src.height)


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


@dataclass
class _Acc:
    """What one field gathers in one scene."""

    met: bool = False
    usable_w: float = 0.0
    flagged_w: float = 0.0
    cloud_done: bool = False

    def __post_init__(self) -> None:
        self.values: dict[str, list[np.ndarray]] = {}
        self.weights: dict[str, list[np.ndarray]] = {}
        self.left: dict[str, float] = {}


def _compile(record: SceneRecord, items: list[str], assets: dict[str, Asset]) -> dict[str, Program]:
    sensor = SENSORS[record.sensor]
    programs = {}
    for item in items:
        try:
            programs[item] = compile_expressions(item, sensor, max_expressions=1)[0]
        except UserError as exc:
            raise UserError(f"{item}: {exc.message}") from None
        missing = [b for b in programs[item].bands if b not in assets]
        if missing:
            raise UserError(f"The scene has no {', '.join(missing)} band")
    return programs


def scene_fields_statistics(record: SceneRecord, items: list[str], fields: list[tuple[Any, BaseGeometry]],
                            options: FieldOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(result items, error items) of every field that meets the scene; fields it does not meet
    are not mentioned (the flow reports a field no scene met)."""
    assets = scene_assets(record)
    programs = _compile(record, items, assets)
    groups: dict[float, list[str]] = {}
    for item, program in programs.items():
        groups.setdefault(max(assets[b].resolution for b in program.bands), []).append(item)
    kind = mask_kind(record)
    acc = [_Acc() for _ in fields]
    first = True
    for resolution, group in sorted(groups.items()):
        bands = list(dict.fromkeys(b for item in group for b in programs[item].bands))
        reference = max(bands, key=lambda b: assets[b].resolution)
        grid = scene_grid(assets[reference])
        covs = field_coverages(fields, grid, options.coverage)
        # Which fields have pixels in which block.
        blocks: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for i, cov in enumerate(covs):
            if cov.cells.size == 0:
                continue
            acc[i].met = True
            rows, cols = cov.rows_cols()
            block_ids = (rows // BLOCK) * ((grid.width + BLOCK - 1) // BLOCK) + cols // BLOCK
            for b in np.unique(block_ids):
                blocks.setdefault(divmod(int(b), (grid.width + BLOCK - 1) // BLOCK), []).append((i, np.nonzero(block_ids == b)[0]))
        for (br, bc), members in sorted(blocks.items()):
            r0, c0 = br * BLOCK, bc * BLOCK
            h, w = min(BLOCK, grid.height - r0), min(BLOCK, grid.width - c0)
            block = Grid(grid.crs, grid.transform * Affine.translation(c0, r0), w, h)
            data, valid = {}, {}
            for band in bands:
                data[band], valid[band] = read_onto_grid(assets[band], block, Resampling.average, band)
            cropped = Cropped(block, data, valid, np.ones((h, w), bool), {b: assets[b] for b in bands})
            if kind is not None:
                mask, mask_valid = read_onto_grid(assets[record.mask_band], block, Resampling.nearest, record.mask_band)
                usable = mask_valid & cloudmask.usable(kind, mask)
                flags = cloudmask.flagged(kind, mask, options.cloud_masking_level) & usable
            else:
                usable = np.ones((h, w), bool)
                flags = np.zeros((h, w), bool)
            values_cache: dict[str, np.ndarray] = {}
            evaluated = {item: evaluate_program(programs[item], cropped, values_cache) for item in group}
            for i, sel in members:
                rows, cols = covs[i].rows_cols()
                local = (rows[sel] - r0) * w + (cols[sel] - c0)
                weight = covs[i].weights[sel]
                u, f = usable.ravel()[local], flags.ravel()[local]
                if first:
                    acc[i].usable_w += float(weight[u].sum())
                    acc[i].flagged_w += float(weight[f].sum())
                for item in group:
                    values, ok = evaluated[item]
                    keep = ok.ravel()[local] & u
                    if options.exclude_cover_pixels:
                        keep &= ~f
                    acc[i].values.setdefault(item, []).append(values.ravel()[local][keep])
                    acc[i].weights.setdefault(item, []).append(weight[keep])
                    acc[i].left[item] = acc[i].left.get(item, 0.0) + float(weight[~keep].sum())
        first = False
    return _answers(record, items, fields, acc, options, kind is None)


def _answers(record: SceneRecord, items: list[str], fields: list[tuple[Any, BaseGeometry]], acc: list[_Acc], options: FieldOptions,
             unmasked: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    results, errors = [], []
    base = {"date": record.date.isoformat(), "scene_id": record.scene_id, "view_id": record.view_id}
    whole = options.coverage == "centre"  # counts are pixels, not sums of weights
    for (fid, _), a in zip(fields, acc):
        if not a.met:
            continue
        # min(): the flagged weights are a subset of the usable ones, summed in another order (a fully
        # clouded field must not come out at 100.00000000000001 % and be refused at a 100 % threshold).
        cloud = min(100.0, 100.0 * a.flagged_w / a.usable_w) if a.usable_w else 0.0
        if cloud > options.max_cloud_cover_in_aoi:
            errors.append({"status": False, "field_id": fid, **base,
                           "error": f"Cloud cover in the field is {cloud:.1f} %, above max_cloud_cover_in_aoi {options.max_cloud_cover_in_aoi:g}"})
            continue
        indexes = {}
        for item in items:
            values = np.concatenate(a.values.get(item) or [np.zeros(0)])
            weights = np.concatenate(a.weights.get(item) or [np.zeros(0)])
            if values.size == 0 or weights.sum() <= 0:
                break
            stats = weighted_summary(values, weights, list(options.percentiles) or None)
            left = a.left.get(item, 0.0)
            stats["count"] = int(round(stats["count"])) if whole else stats["count"]
            stats["nodata_count"] = int(round(left)) if whole else left
            if options.histogram_edges is not None:
                stats["histogram"] = weighted_histogram(values, weights, list(options.histogram_edges))
            indexes[item] = stats
        else:
            item_out = {"field_id": fid, **base, "cloud": cloud, "indexes": indexes}
            if unmasked:
                item_out["unmasked"] = True
            results.append(item_out)
            continue
        errors.append({"status": False, "field_id": fid, **base, "error": "No valid pixels in the field"})
    return results, errors
