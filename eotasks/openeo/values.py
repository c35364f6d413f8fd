"""How openEO's values live in this back-end.

- Scalars are Python's: ``None`` is openEO's null (no data), ``float('nan')`` is a number.
- Arrays from JSON are Python lists; a labeled array (a band's values, a dimension's labels) is a
  ``Labeled``. Inside a callback over a data cube (the reducer of ``reduce_dimension``, the
  process of ``apply_dimension``) an array is a ``Labeled`` whose ``values`` is a numpy array, its
  first axis the dimension's labels and the rest the cube's other axes: the callback runs once for
  every pixel at a time (vectorised), never once per pixel.
- Numbers in a numpy array are float64 with NaN as null (a raster has no other no-data), and
  booleans there are 1.0 / 0.0 / NaN, so three-valued logic works on whole cubes.
- A raster data cube is a ``Raster`` (``eotasks.raster.image``) with dims such as
  ``("t", "bands", "y", "x")``; a vector cube (``aggregate_spatial``'s answer) a ``VectorCube``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Labeled:
    """An array whose elements may carry labels; ``values`` a list or a numpy array (axis 0 the
    elements)."""

    values: Any
    labels: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, eq=False)
class VectorCube:
    """Values per geometry: ``values`` of shape (geometries, *other dims), ``dims`` starting with
    ``geometry``; ``geometries`` the GeoJSON features (EPSG:4326) in that order."""

    values: np.ndarray
    dims: tuple[str, ...]
    labels: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    geometries: list[dict[str, Any]] = field(default_factory=list)


def is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (isinstance(value, Labeled) and isinstance(value.values, np.ndarray))


def as_float_array(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(numbers as float64, where they are null): a list's None are null; in a numpy array NaN is."""
    if isinstance(values, Labeled):
        values = values.values
    if isinstance(values, np.ndarray):
        arr = values.astype(np.float64, copy=False)
        return arr, np.isnan(arr)
    items = list(values)
    null = np.array([v is None for v in items], bool)
    arr = np.array([np.nan if (v is None or isinstance(v, (str, dict, list))) else float(v) for v in items], np.float64)
    return arr, null


def to_python(value: Any) -> Any:
    """A result as JSON's types: numpy scalars as Python's, arrays as lists, labeled arrays as lists."""
    if isinstance(value, Labeled):
        return to_python(value.values)
    if isinstance(value, np.ndarray):
        return [to_python(v) for v in value.tolist()] if value.ndim else to_python(value.item())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    return value
