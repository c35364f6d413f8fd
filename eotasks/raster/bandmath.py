"""Evaluate compiled band-maths programs over cropped reflectance."""

from __future__ import annotations

import numpy as np

from eotasks.raster.crop import Cropped
from eotasks.raster.expression import evaluate_blocks
from eotasks.raster.indices import Program

NODATA = -9999.0


def evaluate_program(program: Program, cropped: Cropped, cache: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and where they are valid: inside the AOI, every band used has data there, and
    the maths is finite (division by zero, log of a negative number and overflow are not).
    ``cache`` keeps each band's reflectance so several programs convert it once."""
    cache = {} if cache is None else cache
    for band in program.bands:
        if band not in cache:
            cache[band] = cropped.reflectance(band)
    valid = cropped.inside.copy()
    for band in program.bands:
        valid &= cropped.valid[band]
    with np.errstate(all="ignore"):
        values = evaluate_blocks(program.ast, cache, valid.shape)
        valid &= np.isfinite(values)
    return values, valid


def compute_indices(programs: list[Program], cropped: Cropped, nodata: float = NODATA) -> np.ndarray:
    """One float32 band per program, ``nodata`` wherever ``evaluate_program`` says invalid."""
    cache: dict[str, np.ndarray] = {}
    out = np.empty((len(programs), cropped.grid.height, cropped.grid.width), np.float32)
    for i, program in enumerate(programs):
        values, valid = evaluate_program(program, cropped, cache)
        with np.errstate(all="ignore"):
            out[i] = np.where(valid, values, nodata).astype(np.float32)
        # A finite float64 that overflows float32 becomes inf: nodata too.
        out[i][~np.isfinite(out[i])] = nodata
    return out
