"""Cloud masks by ``cloud_masking_level`` (SPEC §3) for each product's mask band.

Levels: 1 = high-confidence cloud; 2 = medium and high cloud; 3 = level 2 plus cirrus and cloud
shadow (Sentinel-2 also class 7, unclassified; Landsat Collection 2 also dilated cloud);
4 = level 2 plus cirrus. ``flagged`` says which pixels the level flags, ``usable`` which pixels
of the mask band carry a classification at all (fill / no-data / defective pixels do not).
"""

from __future__ import annotations

import numpy as np

SCL_CLASSES = {1: (9,), 2: (8, 9), 3: (3, 7, 8, 9, 10), 4: (8, 9, 10)}
SCL_UNUSABLE = (0, 1)  # no data, saturated or defective


def _bits(qa: np.ndarray, first: int, count: int = 1) -> np.ndarray:
    return (qa.astype(np.uint32) >> first) & ((1 << count) - 1)


def flagged(kind: str, mask: np.ndarray, level: int) -> np.ndarray:
    """Boolean array: pixels the mask flags at ``level``; ``kind`` is SCL, QA_PIXEL, BQA_C1 or BQA_PRE."""
    if level not in (1, 2, 3, 4):
        raise ValueError(f"cloud_masking_level must be 1-4, got {level}")
    if kind == "SCL":
        return np.isin(mask, SCL_CLASSES[level])
    if kind == "QA_PIXEL":  # Collection 2
        conf = _bits(mask, 8, 2)
        cloud = conf == 3 if level == 1 else conf >= 2
        if level == 3:
            cloud |= (_bits(mask, 2) == 1) | (_bits(mask, 4) == 1) | (_bits(mask, 1) == 1)
        elif level == 4:
            cloud |= _bits(mask, 2) == 1
        return cloud
    if kind == "BQA_C1":  # Landsat 8 Collection 1
        conf = _bits(mask, 5, 2)
        cloud = conf == 3 if level == 1 else conf >= 2
        if level == 3:
            cloud |= (_bits(mask, 7, 2) >= 2) | (_bits(mask, 11, 2) >= 2)
        elif level == 4:
            cloud |= _bits(mask, 11, 2) >= 2
        return cloud
    if kind == "BQA_PRE":  # pre-collection: cloud confidence 14-15, cirrus confidence 12-13
        conf = _bits(mask, 14, 2)
        cloud = conf == 3 if level == 1 else conf >= 2
        if level in (3, 4):
            cloud |= _bits(mask, 12, 2) >= 2
        return cloud
    raise ValueError(f"unknown mask kind {kind!r}")


def usable(kind: str, mask: np.ndarray) -> np.ndarray:
    if kind == "SCL":
        return ~np.isin(mask, SCL_UNUSABLE)
    return _bits(mask, 0) == 0  # Landsat designated fill
