"""The ten statistics of SPEC §3 over the valid pixels of an AOI."""

from __future__ import annotations

import numpy as np

STAT_KEYS = ("min", "max", "average", "median", "std", "variance", "q1", "q3", "p10", "p90")


def summarize(values: np.ndarray) -> dict[str, float]:
    """Population variance and std; percentiles by linear interpolation (numpy's default)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no valid pixels")
    p10, q1, median, q3, p90 = np.percentile(v, [10, 25, 50, 75, 90])
    mean = float(v.mean())
    variance = float(np.mean((v - mean) ** 2))
    return {
        "min": float(v.min()), "max": float(v.max()), "average": mean, "median": float(median),
        "std": float(np.sqrt(variance)), "variance": variance,
        "q1": float(q1), "q3": float(q3), "p10": float(p10), "p90": float(p90),
    }
