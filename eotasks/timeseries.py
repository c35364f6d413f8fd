"""The per-scene work of ``mt_stats``: statistics of indices over fields, from one read of each band.

One path for a single AOI and for thousands of fields: a single AOI is one field. The fields a scene
meets are laid on the scene's grid once (their coverage: which pixels, with what weight;
``eotasks.raster.coverage``) and that coverage is kept for every other scene on the same grid
(every date of a tile). The scene's bands are then read in one window where the fields' pixels fill
it (a single AOI, clustered fields), or else in blocks of ``BLOCK`` x ``BLOCK`` pixels only where
some field has pixels, so memory follows the fields however they are spread over the tile. Each
window's index values feed every field that has pixels in it.

With ``coverage="centre"`` a pixel belongs to a field when its centre is inside; with ``"exact"``
it weighs the fraction of its area inside (exactextract's coverage). The mask band is read onto each
index grid with nearest resampling (it holds classes or bit flags).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from eotasks.catalog.ids import parse_view_id
from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import SceneSkipped, UserError
from eotasks.raster import cloudmask
from eotasks.raster.aoi import to_crs
from eotasks.raster.coverage import Coverage, centre_coverage, exact_coverage
from eotasks.raster.grid import Grid
from eotasks.raster.indices import Program, compile_expressions
from eotasks.raster.read import Asset, BandFiles, coarsest
from eotasks.raster.stats import grouped_histograms, grouped_summaries
from eotasks.sensors import SENSORS

BLOCK = 512


@dataclass(frozen=True)
class StatsOptions:
    """Everything of a request that shapes one scene's statistics (one type for every path)."""

    cloud_masking_level: int = 1
    exclude_cover_pixels: bool = True
    max_cloud_cover_in_aoi: float = 100.0
    coverage: str = "centre"  # or "exact"
    percentiles: tuple[float, ...] = ()
    histogram_edges: tuple[float, ...] | None = None
    # SPEC's richer statistics (count, nodata_count) are in an answer only when a request asks for any.
    richer: bool = False


class Field:
    """An area statistics are computed over: one of a request's fields, or its single AOI (id None).

    A plain class, not a dataclass: Dask takes dataclasses in a task's arguments apart."""

    __slots__ = ("id", "shape")

    def __init__(self, id: Any, shape: BaseGeometry) -> None:
        self.id = id
        self.shape = shape  # lon/lat

    def __repr__(self) -> str:
        return f"Field({self.id!r})"


class Fields(Sequence[Field]):
    """The areas of one request. A plain container on purpose: Prefect does not walk it looking for
    futures in a step's inputs (a thousand polygons' coordinates, twice per step), and Dask passes it
    whole (it rebuilds lists of dataclasses, and Prefect's ``quote``, as plain tuples)."""

    __slots__ = ("items",)

    def __init__(self, items: Sequence[Field]) -> None:
        self.items = tuple(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        return self.items[i]

    def __iter__(self) -> Any:
        return iter(self.items)


@dataclass(frozen=True)
class SceneRef:
    """Which scene an answer's item is about: its ids and date, nothing more (a step's result is
    walked by Prefect, and a catalogue row's footprint and assets would be walked with it)."""

    scene_id: str
    view_id: str
    date: str  # ISO

    @classmethod
    def of(cls, record: SceneRecord) -> SceneRef:
        return cls(record.scene_id, record.view_id, record.date.isoformat())


@dataclass(frozen=True)
class IntervalRef(SceneRef):
    """An interval's item (SPEC §6): its first and last day and the scenes composited."""

    last: str = ""
    scenes: tuple[str, ...] = ()

    @classmethod
    def of_interval(cls, first: str, last: str, scenes: Sequence[str]) -> IntervalRef:
        return cls("", "", first, last, tuple(scenes))


@dataclass
class SceneRow:
    """One field's statistics on one scene (a ``result`` item)."""

    field_id: Any
    scene: SceneRef
    cloud: float
    indexes: dict[str, dict[str, Any]]  # bm_type item -> statistics
    unmasked: bool = False


@dataclass
class SkippedRow:
    """A field (or the AOI) left out of one scene, or of every scene, with the reason (an ``errors`` item)."""

    field_id: Any
    scene: SceneRef | None
    error: str


@dataclass
class SceneOutcome:
    rows: list[SceneRow] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)


def mask_kind(record: SceneRecord) -> str | None:
    """The bit layout of the scene's mask band: by its name, and for BQA by the collection."""
    if record.mask_band in ("SCL", "QA_PIXEL"):
        return record.mask_band
    if record.mask_band == "BQA":
        return "BQA_C1" if parse_view_id(record.view_id).collection == "01" else "BQA_PRE"
    return None


def compile_indices(record: SceneRecord, indices: Sequence[str], assets: dict[str, Asset]) -> dict[str, Program]:
    """Each bm_type item compiled for the scene's sensor, or SceneSkipped with the reason."""
    sensor = SENSORS[record.sensor]
    programs: dict[str, Program] = {}
    for index in indices:
        try:
            programs[index] = compile_expressions(index, sensor, max_expressions=1)[0]
        except UserError as exc:
            raise SceneSkipped(f"{index}: {exc.message}") from None
        missing = [b for b in programs[index].bands if b not in assets]
        if missing:
            raise SceneSkipped(f"The scene has no {', '.join(missing)} band")
    return programs


# --- where the fields are on a grid: computed once per grid, kept for every date on it ------------


class _Cache:
    """key -> value, least recently used out, shared by the threads of a run: the scenes of a request
    start together on several threads, all on the same grid, and one thread computes a missing entry
    while the others wait for it (laying the fields on a grid is the costliest part of a scene)."""

    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict[Hashable, Any](), threading.Lock()
        self.making = threading.RLock()

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return True, self.items[key]
        return False, None

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        found, value = self._lookup(key)
        if found:
            return value
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


COVERAGE = _Cache(200_000)
PLANS = _Cache(64)


def field_coverages(fields: Sequence[Field], grid: Grid, rule: str) -> list[Coverage]:
    """Each field's coverage of ``grid``, from the cache when this field met this grid before (the
    key is the field's shape itself, so two requests with the same field share it)."""
    compute = exact_coverage if rule == "exact" else centre_coverage
    out = []
    for f in fields:

        def make(geom: BaseGeometry = f.shape) -> Coverage:
            return compute(to_crs(geom, grid.crs), grid.transform, grid.width, grid.height)

        out.append(COVERAGE.get((f.shape.wkb, *grid.key(), rule), make))
    return out


@dataclass(frozen=True)
class GridPlan:
    """All fields' pixels on one grid, grouped by read window: what each window feeds."""

    local: np.ndarray  # int64 index of each cell inside its window (row-major)
    weights: np.ndarray  # float64
    field: np.ndarray  # int64 field index of each cell
    windows: list[tuple[int, int, int, int, int, int]]  # (row, col, height, width, start, stop) into the arrays above
    met: np.ndarray  # bool per field: it has pixels on this grid
    # One field of unit weights (a single AOI, centre rule) in one window: its pixels as a mask of
    # the window, so a scene's gather is a few mask operations rather than index lookups.
    inside: np.ndarray | None = None


# One window for all the cells when they fill at least this share of their bounding window (one AOI,
# clustered fields) and it is not larger than this: one read per band. Fields scattered over a tile
# are read in BLOCK x BLOCK windows where they are, so memory follows the fields, not the tile.
DENSE_SHARE = 0.25
DENSE_MAX_PIXELS = 1 << 24


def grid_plan(fields: Sequence[Field], grid: Grid, rule: str) -> GridPlan:
    key = (tuple((f.id, f.shape.bounds) for f in fields), *grid.key(), rule)

    def make() -> GridPlan:
        covs = field_coverages(fields, grid, rule)
        met = np.array([c.cells.size > 0 for c in covs], bool)
        cells = np.concatenate([c.cells for c in covs] or [np.zeros(0, np.int64)])
        weights = np.concatenate([c.weights for c in covs] or [np.zeros(0)])
        owner = np.repeat(np.arange(len(covs)), [c.cells.size for c in covs])
        if cells.size == 0:
            return GridPlan(cells, weights, owner, [], met)
        rows, cols = np.divmod(cells, grid.width)
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        extent = (r1 - r0) * (c1 - c0)
        if extent <= DENSE_MAX_PIXELS and cells.size >= DENSE_SHARE * extent:
            local = (rows - r0) * (c1 - c0) + (cols - c0)
            inside = None
            if len(fields) == 1 and (weights == 1.0).all():
                flat = np.zeros((r1 - r0) * (c1 - c0), bool)
                flat[local] = True
                inside = flat.reshape(r1 - r0, c1 - c0)
            return GridPlan(local, weights, owner, [(r0, c0, r1 - r0, c1 - c0, 0, cells.size)], met, inside)
        across = (grid.width + BLOCK - 1) // BLOCK
        block = (rows // BLOCK) * across + cols // BLOCK
        order = np.argsort(block, kind="stable")
        rows, cols, weights, owner, block = rows[order], cols[order], weights[order], owner[order], block[order]
        ids, starts = np.unique(block, return_index=True)
        stops = np.append(starts[1:], block.size)
        windows = []
        local = np.empty(cells.size, np.int64)
        for i, a, b in zip(ids.tolist(), starts.tolist(), stops.tolist(), strict=False):
            br, bc = divmod(i, across)
            h, w = min(BLOCK, grid.height - br * BLOCK), min(BLOCK, grid.width - bc * BLOCK)
            local[a:b] = (rows[a:b] - br * BLOCK) * w + (cols[a:b] - bc * BLOCK)
            windows.append((br * BLOCK, bc * BLOCK, h, w, a, b))
        return GridPlan(local, weights, owner, windows, met)

    return PLANS.get(key, make)


# --- one scene --------------------------------------------------------------------------------------


@dataclass
class _Gathered:
    """What the blocks of one scene leave for the statistics: per index, the used pixels' values,
    weights and fields; the weight each field left out; the usable and flagged weight per field."""

    n: int
    indices: Sequence[str]
    # (values, weights, fields) of each window; weights and fields None for one field of unit weights
    parts: dict[str, list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]] = field(default_factory=dict)
    left: dict[str, np.ndarray] = field(default_factory=dict)
    usable: np.ndarray = field(default_factory=lambda: np.zeros(0))
    flagged: np.ndarray = field(default_factory=lambda: np.zeros(0))
    met: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __post_init__(self) -> None:
        self.parts = {i: [] for i in self.indices}
        self.left = {i: np.zeros(self.n) for i in self.indices}
        self.usable, self.flagged, self.met = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n, bool)


def scene_statistics(record: SceneRecord, indices: Sequence[str], fields: Sequence[Field], options: StatsOptions) -> SceneOutcome:
    """Every field that meets the scene: its statistics, or why it is left out. A field the scene
    does not meet is not mentioned (the flow reports a field no scene met); a single AOI (one field
    with id None) that the scene does not meet is left out with a reason."""
    assets = scene_assets(record)
    programs = compile_indices(record, indices, assets)  # SceneSkipped (a UserError) names the reason
    # Indices whose coarsest band has the same resolution share one grid (one read per band).
    groups: dict[float, list[str]] = {}
    for index, program in programs.items():
        groups.setdefault(assets[coarsest(assets, program.bands)].resolution, []).append(index)
    kind = mask_kind(record)
    mask_band = record.mask_band or ""  # there is one whenever kind is known
    got = _Gathered(len(fields), indices)
    with BandFiles(assets) as files:  # each band's file is opened once, for all its blocks
        for first, (_, group) in enumerate(sorted(groups.items())):
            bands = list(dict.fromkeys(b for index in group for b in programs[index].bands))
            grid = files.native_grid(coarsest(assets, bands))
            plan = grid_plan(fields, grid, options.coverage)
            got.met |= plan.met
            for row, col, height, width, start, stop in plan.windows:
                block = grid.block(row, col, height, width)
                raster = files.read(bands, block)
                if kind is not None:
                    classes, has_data = files.read_classes(mask_band, block)
                    usable = has_data & cloudmask.usable(kind, classes)
                    flags = cloudmask.flagged(kind, classes, options.cloud_masking_level) & usable
                else:
                    usable = np.ones(block.shape, bool)
                    flags = np.zeros(block.shape, bool)
                values = raster.evaluate([programs[i] for i in group]).values
                if plan.inside is not None:
                    _gather_one(got, group, values, plan.inside, usable, flags, first == 0, options.exclude_cover_pixels)
                    continue
                values = values.reshape(len(group), -1)
                local = plan.local[start:stop]
                weight, owner = plan.weights[start:stop], plan.field[start:stop]
                u, f = usable.ravel()[local], flags.ravel()[local]
                if first == 0:  # cloud is measured on the first grid, as for a single AOI
                    got.usable += np.bincount(owner, np.where(u, weight, 0.0), got.n)
                    got.flagged += np.bincount(owner, np.where(f, weight, 0.0), got.n)
                for k, index in enumerate(group):
                    v = values[k][local]
                    keep = ~np.isnan(v) & u
                    if options.exclude_cover_pixels:
                        keep &= ~f
                    got.parts[index].append((v[keep], weight[keep], owner[keep]))
                    got.left[index] += np.bincount(owner, np.where(keep, 0.0, weight), got.n)
    return _outcome(SceneRef.of(record), fields, got, options, unmasked=kind is None)


def _gather_one(
    got: _Gathered,
    group: list[str],
    values: np.ndarray,
    inside: np.ndarray,
    usable: np.ndarray,
    flags: np.ndarray,
    first: bool,
    exclude: bool,
) -> None:
    """The gather for one field of unit weights, with masks of its window (what the general gather
    computes for it, without index lookups)."""
    covered = inside & usable
    if first:
        got.usable[0] += int(covered.sum())
        got.flagged[0] += int((flags & covered).sum())
    total = int(inside.sum())
    ok = covered & ~flags if exclude else covered
    for k, index in enumerate(group):
        v = values[k][ok & ~np.isnan(values[k])]
        got.parts[index].append((v, None, None))
        got.left[index][0] += total - v.size


def _outcome(ref: SceneRef, fields: Sequence[Field], got: _Gathered, options: StatsOptions, unmasked: bool) -> SceneOutcome:
    n = len(fields)
    whole = options.coverage == "centre"  # counts are pixels, not sums of weights
    qs = [0.10, 0.25, 0.50, 0.75, 0.90, *[p / 100.0 for p in options.percentiles]]
    stats, hists = {}, {}
    for index in got.indices:
        parts = got.parts[index]
        v = np.concatenate([p[0] for p in parts] or [np.zeros(0)])
        w: np.ndarray | None
        g: np.ndarray | None
        if parts and all(p[1] is None for p in parts):  # one field of unit weights
            w, g = None, None
            stats[index] = grouped_summaries(v, None, None, 1, qs)
        else:
            w = np.concatenate([p[1] if p[1] is not None else np.ones(p[0].size) for p in parts] or [np.zeros(0)])
            g = np.concatenate(
                [p[2] if p[2] is not None else np.zeros(p[0].size, np.int64) for p in parts] or [np.zeros(0, np.int64)]
            )
            stats[index] = grouped_summaries(v, w, g, n, qs)
        if options.histogram_edges is not None:
            if w is None or g is None:
                w, g = np.ones(v.size), np.zeros(v.size, np.int64)
            hists[index] = grouped_histograms(v, w, g, n, list(options.histogram_edges))
    # min(): the flagged weights are a subset of the usable ones, summed in another order (a fully
    # clouded field must not come out at 100.00000000000001 % and be refused at a 100 % threshold).
    with np.errstate(invalid="ignore", divide="ignore"):
        cloud = np.where(got.usable > 0, np.minimum(100.0, 100.0 * got.flagged / np.where(got.usable > 0, got.usable, 1)), 0.0)
    conv: Callable[[float], Any] = (lambda x: round(x)) if whole else float
    edges = [float(e) for e in options.histogram_edges] if options.histogram_edges is not None else None
    # Python lists once per statistic: a thousand fields' dictionaries are built from plain floats.
    lists = {index: {k: a.tolist() for k, a in stats[index].items()} for index in got.indices}
    lefts = {index: got.left[index].tolist() for index in got.indices}
    hist_lists = {index: tuple(a.tolist() for a in hists[index]) for index in hists}
    cloud_l, met_l = cloud.tolist(), got.met.tolist()
    out = SceneOutcome()
    for i, f in enumerate(fields):
        where = "AOI" if f.id is None else "field"
        if not met_l[i]:
            if f.id is None:  # the scene's footprint meets the AOI, but no pixel of its grid does
                out.skipped.append(SkippedRow(None, ref, "No valid pixels in the AOI"))
            continue
        if cloud_l[i] > options.max_cloud_cover_in_aoi:
            out.skipped.append(
                SkippedRow(
                    f.id,
                    ref,
                    f"Cloud cover in the {where} is {cloud_l[i]:.1f} %, above max_cloud_cover_in_aoi "
                    f"{options.max_cloud_cover_in_aoi:g}",
                )
            )
            continue
        if any(not lists[index]["count"][i] > 0 for index in got.indices):
            out.skipped.append(SkippedRow(f.id, ref, f"No valid pixels in the {where}"))
            continue
        indexes = {}
        for index in got.indices:
            st = lists[index]
            variance = st["variance"][i]
            one: dict[str, Any] = {
                "min": st["min"][i],
                "max": st["max"][i],
                "average": st["average"][i],
                "median": st["q2"][i],
                "std": math.sqrt(variance),
                "variance": variance,
                "q1": st["q1"][i],
                "q3": st["q3"][i],
                "p10": st["q0"][i],
                "p90": st["q4"][i],
            }
            if options.richer:
                one["count"] = conv(st["count"][i])
                one["nodata_count"] = conv(lefts[index][i])
            if options.percentiles:
                one["percentiles"] = {f"{p:g}": st[f"q{5 + k}"][i] for k, p in enumerate(options.percentiles)}
            if edges is not None:
                counts, under, over = hist_lists[index]
                one["histogram"] = {
                    "edges": edges,
                    "counts": [conv(c) for c in counts[i]],
                    "underflow": conv(under[i]),
                    "overflow": conv(over[i]),
                }
            indexes[index] = one
        out.rows.append(SceneRow(f.id, ref, cloud_l[i], indexes, unmasked))
    return out
