"""Band maths over a ``Raster``: one output band per compiled program (``eotasks.raster.indices``).

A pixel has no data (NaN) when any band the program uses has none there (outside a polygon AOI,
the band's nodata) or when the maths is not finite (division by zero, log of a negative number,
overflow). Evaluation runs over blocks of pixels straight into the output array, so memory is the
inputs and the outputs, whatever the programs' depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eotasks.raster.expression import evaluate_blocks
from eotasks.raster.image import Raster
from eotasks.raster.indices import Program


def evaluate(raster: Raster, programs: Sequence[Program], dtype: Any = np.float64) -> Raster:
    """A (bands, y, x) Raster of ``dtype``, one band per program, labelled with its source text.

    ``raster`` holds at least the bands the programs use (physical values, NaN = no data)."""
    out = np.empty((len(programs), *raster.grid.shape), dtype)
    planes = {band: raster.band(band) for band in dict.fromkeys(b for p in programs for b in p.bands)}
    with np.errstate(all="ignore"):
        for i, program in enumerate(programs):
            evaluate_blocks(program.ast, {b: planes[b] for b in program.bands}, raster.grid.shape, out[i], program.bands)
    return Raster(out, raster.grid, ("bands", "y", "x"), {"bands": tuple(p.source for p in programs)})
