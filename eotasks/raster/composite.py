"""Per-pixel composites over time (SPEC §6): the reducer of an interval's observations, one scene
at a time, so a year of scenes never has to be held at once.

An observation is a finite value; NaN is none (nodata, outside the AOI, or cloud when cloud is
excluded). ``mean``, ``min``, ``max``, ``first`` and ``last`` keep one or two arrays whatever the
number of scenes; ``median`` must see every value of a pixel, so it keeps the interval's planes
(scenes x pixels x 8 bytes: what the budget counts for it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

REDUCERS = ("mean", "median", "min", "max", "first", "last")


class Composite:
    """Add planes in date order (``add``); ``result()`` is the composite, NaN where a pixel had no
    observation; ``count`` how many observations each pixel had."""

    def __init__(self, reducer: str, shape: tuple[int, ...]):
        if reducer not in REDUCERS:
            raise ValueError(f"unknown composite {reducer!r}; one of {', '.join(REDUCERS)}")
        self.reducer, self.shape = reducer, shape
        self.count = np.zeros(shape, np.int64)
        self._value = np.full(shape, np.nan)
        self._planes: list[np.ndarray] = []

    def add(self, plane: np.ndarray) -> None:
        if plane.shape != self.shape:
            raise ValueError(f"a plane of shape {plane.shape} added to a composite of {self.shape}")
        seen = np.isfinite(plane)
        self.count += seen
        if self.reducer == "median":
            self._planes.append(np.where(seen, plane, np.nan).astype(np.float64))
        elif self.reducer == "mean":
            self._value = np.where(seen, np.nan_to_num(self._value) + np.where(seen, plane, 0.0), self._value)
        elif self.reducer == "min":
            self._value = np.fmin(self._value, np.where(seen, plane, np.nan))
        elif self.reducer == "max":
            self._value = np.fmax(self._value, np.where(seen, plane, np.nan))
        elif self.reducer == "first":
            self._value = np.where(np.isnan(self._value) & seen, plane, self._value)
        else:  # last
            self._value = np.where(seen, plane, self._value)

    def result(self) -> np.ndarray:
        if self.reducer == "median":
            if not self._planes:
                return np.full(self.shape, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": a pixel never observed
                return np.nanmedian(np.stack(self._planes), axis=0)
        if self.reducer == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(self.count > 0, self._value / np.maximum(self.count, 1), np.nan)
        return self._value.copy()


def composite(planes: Iterable[np.ndarray], reducer: str) -> np.ndarray:
    """The composite of ``planes`` (in date order) with ``reducer``."""
    planes = list(planes)
    if not planes:
        raise ValueError("no planes to composite")
    acc = Composite(reducer, planes[0].shape)
    for plane in planes:
        acc.add(plane)
    return acc.result()
