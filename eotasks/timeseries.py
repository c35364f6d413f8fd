"""Statistics of indices over an AOI for one catalogued scene: the per-scene work of ``mt_stats``.

Each band window is read once per scene grid, the AOI mask computed once per grid, and the mask
band read onto the index grid with nearest resampling (it holds classes or bit flags).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from eotasks.catalog.ids import parse_view_id
from eotasks.catalog.scenes import scene_assets
from eotasks.db import SceneRecord
from eotasks.errors import UserError
from eotasks.raster import cloudmask
from eotasks.raster.bandmath import evaluate_program
from eotasks.raster.crop import crop_to_aoi, read_onto_grid
from eotasks.raster.indices import Program, compile_expressions
from eotasks.raster.stats import summarize
from eotasks.sensors import SENSORS


class SceneSkipped(UserError):
    """The scene is left out of the result for a reason the client should see (not a failure)."""


@dataclass(frozen=True)
class StatsOptions:
    cloud_masking_level: int = 1
    exclude_cover_pixels: bool = True
    max_cloud_cover_in_aoi: float = 100.0


def mask_kind(record: SceneRecord) -> str | None:
    """The bit layout of the scene's mask band: by its name, and for BQA by the collection."""
    if record.mask_band in ("SCL", "QA_PIXEL"):
        return record.mask_band
    if record.mask_band == "BQA":
        return "BQA_C1" if parse_view_id(record.view_id).collection == "01" else "BQA_PRE"
    return None


def compile_items(record: SceneRecord, items: list[str], assets: dict) -> dict[str, Program]:
    """Each bm_type item compiled for the scene's sensor, or SceneSkipped with the reason."""
    sensor = SENSORS[record.sensor]
    programs: dict[str, Program] = {}
    for item in items:
        try:
            programs[item] = compile_expressions(item, sensor, max_expressions=1)[0]
        except UserError as exc:
            raise SceneSkipped(f"{item}: {exc.message}") from None
        missing = [b for b in programs[item].bands if b not in assets]
        if missing:
            raise SceneSkipped(f"The scene has no {', '.join(missing)} band")
    return programs


def scene_statistics(record: SceneRecord, items: list[str], aoi: BaseGeometry, options: StatsOptions) -> dict[str, Any]:
    """``{"scene_id", "view_id", "date", "cloud", "indexes": {item: stats}}`` or SceneSkipped."""
    assets = scene_assets(record)
    programs = compile_items(record, items, assets)
    # Items whose coarsest band has the same resolution share one grid (one read per band).
    groups: dict[float, list[str]] = {}
    for item, program in programs.items():
        groups.setdefault(max(assets[b].resolution for b in program.bands), []).append(item)
    kind = mask_kind(record)
    cloud: float | None = None
    indexes: dict[str, dict[str, float]] = {}
    for _, group in sorted(groups.items()):
        bands = list(dict.fromkeys(b for item in group for b in programs[item].bands))
        cropped = crop_to_aoi(assets, bands, aoi, mask_outside=True)
        if kind is not None:
            mask, mask_valid = read_onto_grid(assets[record.mask_band], cropped.grid, Resampling.nearest, record.mask_band)
            usable = mask_valid & cloudmask.usable(kind, mask)
            flags = cloudmask.flagged(kind, mask, options.cloud_masking_level) & usable
        else:
            usable = np.ones(cropped.inside.shape, bool)
            flags = np.zeros(cropped.inside.shape, bool)
        if cloud is None:
            covered = cropped.inside & usable
            n = int(covered.sum())
            cloud = 100.0 * int((flags & covered).sum()) / n if n else 0.0
            if cloud > options.max_cloud_cover_in_aoi:
                raise SceneSkipped(f"Cloud cover in the AOI is {cloud:.1f} %, above max_cloud_cover_in_aoi {options.max_cloud_cover_in_aoi:g}")
        cache: dict[str, np.ndarray] = {}
        for item in group:
            values, valid = evaluate_program(programs[item], cropped, cache)
            valid &= usable
            if options.exclude_cover_pixels:
                valid &= ~flags
            if not valid.any():
                raise SceneSkipped("No valid pixels in the AOI")
            indexes[item] = summarize(values[valid])
    out: dict[str, Any] = {"scene_id": record.scene_id, "view_id": record.view_id, "date": record.date.isoformat(),
                           "cloud": cloud if cloud is not None else 0.0, "indexes": {i: indexes[i] for i in items}}
    if kind is None:
        out["unmasked"] = True
    return out


def error_item(record: SceneRecord, message: str) -> dict[str, Any]:
    return {"status": False, "date": record.date.isoformat(), "scene_id": record.scene_id, "view_id": record.view_id, "error": message}


def shape_answer(items: list[dict[str, Any]], errors: list[dict[str, Any]], bm_type: str | list[str]) -> dict[str, Any]:
    """SPEC's answer: sorted by date ascending; flat statistics for a string bm_type."""
    result = []
    for item in sorted(items, key=lambda i: (i["date"], i["view_id"])):
        if isinstance(bm_type, str):
            flat = {k: v for k, v in item.items() if k != "indexes"}
            flat.update(item["indexes"][bm_type])
            result.append(flat)
        else:
            result.append(item)
    return {"errors": sorted(errors, key=lambda e: (e["date"], e["view_id"])), "result": result}
