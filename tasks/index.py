"""Step ``index``: band-maths programs over the cropped values, one output band each."""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task

from eotasks.raster.image import Raster
from eotasks.raster.indices import Program
from tasks._policy import compute_step


@task(name="index", task_run_name="index", timeout_seconds=900, **compute_step())
def index(programs: list[Program], bands: Raster) -> Raster:
    """Float32, as the files are written (and as pictures are drawn from)."""
    out = bands.evaluate(programs, np.float32)
    logger = get_run_logger()
    for program, values in zip(programs, out.values, strict=False):
        valid = ~np.isnan(values)
        logger.info(
            "%s: %d valid px%s",
            program.source,
            int(valid.sum()),
            f", mean {float(values[valid].mean()):.4f}" if valid.any() else "",
        )
    return out
