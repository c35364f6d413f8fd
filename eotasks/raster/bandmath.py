"""Evaluate compiled band-maths programs over cropped reflectance: float32 out, nodata where invalid."""

from __future__ import annotations

import numpy as np

from eotasks.raster.crop import Cropped
from eotasks.raster.expression import evaluate
from eotasks.raster.indices import Program

NODATA = -9999.0


def compute_indices(programs: list[Program], cropped: Cropped, nodata: float = NODATA) -> np.ndarray:
    """One float32 band per program. A pixel is nodata when it is outside the AOI, when any band the
    program uses is nodata there, or when the maths is not finite (division by zero, log of a
    negative number, overflow)."""
    reflectance = {}
    out = np.empty((len(programs), cropped.grid.height, cropped.grid.width), np.float32)
    for i, program in enumerate(programs):
        for band in program.bands:
            if band not in reflectance:
                reflectance[band] = cropped.reflectance(band)
        valid = cropped.inside.copy()
        for band in program.bands:
            valid &= cropped.valid[band]
        with np.errstate(all="ignore"):
            values = np.broadcast_to(np.asarray(evaluate(program.ast, reflectance), dtype=np.float64), valid.shape)
            valid &= np.isfinite(values)
            out[i] = np.where(valid, values, nodata).astype(np.float32)
            # A finite float64 that overflows float32 becomes inf: nodata too.
            out[i][~np.isfinite(out[i])] = nodata
    return out
