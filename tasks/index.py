"""Step ``index``: evaluate band-maths programs over the cropped reflectance."""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task

from eotasks.raster.bandmath import NODATA, compute_indices
from eotasks.raster.crop import Cropped
from eotasks.raster.indices import Program
from tasks._policy import compute_step


@task(name="index", task_run_name="index", timeout_seconds=900, **compute_step())
def index(programs: list[Program], cropped: Cropped) -> np.ndarray:
    out = compute_indices(programs, cropped, NODATA)
    logger = get_run_logger()
    for program, band in zip(programs, out):
        valid = band != NODATA
        logger.info("%s: %d valid px%s", program.source, int(valid.sum()),
                    f", mean {float(band[valid].mean()):.4f}" if valid.any() else "")
    return out
