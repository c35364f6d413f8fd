"""``Raster``: the one raster type, from the read to the encoder (after rio-tiler's ``ImageData``).

Values, validity, grid and labels travel together:

- ``values``: a numpy array whose last two axes are the grid's rows and columns; **NaN is no
  data**, the one form validity takes (outside a polygon AOI, a band's nodata, maths that is not
  finite). Reflectance and index values are float64 (the maths), outputs float32 (the files).
- ``dims`` names every axis; ``labels`` gives the labels of the non-spatial ones (``bands``: band
  or expression names, ``t``: dates). ``("bands", "y", "x")`` is one scene; ``("t", "bands", "y",
  "x")`` a stack of scenes on one grid (time aggregation, the openEO data cube); any other named
  dimension may be added.
- ``grid``: CRS, transform and size.
- ``attrs``: what the files it came from say about themselves (``dtype``, ``nodata``), for a writer
  that must give them back unchanged (``lbe``).

Why a small dataclass and not an ``xarray.DataArray``: the hot paths (per-block statistics of
thousands of fields, per-pixel composites) work on the bare numpy array, and a DataArray's index
alignment and coordinate bookkeeping on every operation cost more than the maths on a 512 x 512
block; the same information (named dimensions, labels, CRS) is here, and ``to_xarray`` gives a
DataArray at the edges that want one (netCDF, the openEO JSON form). NoData is applied once, when
a file is written (``eotasks.raster.encode``).

Operations take and return a Raster (``evaluate``, ``warp``, ``mask_outside``, ``to_cog``); they
are thin methods over the modules that hold each one, so each module keeps one job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from eotasks.raster.grid import Grid

if TYPE_CHECKING:
    from pathlib import Path

    import xarray
    from rasterio.enums import Resampling
    from shapely.geometry.base import BaseGeometry

    from eotasks.raster.indices import Program


@dataclass(frozen=True, eq=False)
class Raster:
    values: np.ndarray
    grid: Grid
    dims: tuple[str, ...] = ("bands", "y", "x")
    labels: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.ndim != len(self.dims) or self.dims[-2:] != ("y", "x"):
            raise ValueError(f"dims {self.dims} do not describe an array of shape {self.values.shape} ending in (y, x)")
        if self.values.shape[-2:] != self.grid.shape:
            raise ValueError(f"values of shape {self.values.shape} are not on a {self.grid.height} x {self.grid.width} grid")
        for dim, labels in self.labels.items():
            if len(labels) != self.values.shape[self.dims.index(dim)]:
                raise ValueError(f"{len(labels)} labels for dimension {dim} of length {self.values.shape[self.dims.index(dim)]}")

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def of_bands(cls, planes: Mapping[str, np.ndarray], grid: Grid, attrs: Mapping[str, Any] | None = None) -> Raster:
        """One band per entry, in order (each a (rows, cols) array on ``grid``)."""
        names = tuple(planes)
        values = np.stack([planes[n] for n in names]) if names else np.empty((0, *grid.shape))
        return cls(values, grid, ("bands", "y", "x"), {"bands": names}, dict(attrs or {}))

    @classmethod
    def stack(cls, rasters: Sequence[Raster], dim: str, labels: Sequence[Any]) -> Raster:
        """Rasters on one grid, stacked along a new leading dimension ``dim`` (e.g. ``t``)."""
        first = rasters[0]
        if any(r.grid != first.grid or r.dims != first.dims for r in rasters):
            raise ValueError("only rasters on one grid, with the same dimensions, can be stacked")
        return cls(
            np.stack([r.values for r in rasters]),
            first.grid,
            (dim, *first.dims),
            {dim: tuple(labels), **first.labels},
            dict(first.attrs),
        )

    def replace(self, **changes: Any) -> Raster:
        return dataclasses.replace(self, **changes)

    # -- reading it --------------------------------------------------------------------------------

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.labels.get("bands", ()))

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.values)

    def axis(self, dim: str) -> int:
        return self.dims.index(dim)

    def band(self, name: str) -> np.ndarray:
        """One band's values (the ``bands`` axis removed): a view, not a copy."""
        index: list[Any] = [slice(None)] * self.values.ndim
        index[self.axis("bands")] = self.bands.index(name)
        return self.values[tuple(index)]

    def select(self, dim: str, labels: Sequence[Any]) -> Raster:
        """The given labels of ``dim``, in that order."""
        have = list(self.labels[dim])
        index = [have.index(label) for label in labels]
        return self.replace(values=np.take(self.values, index, axis=self.axis(dim)), labels={**self.labels, dim: tuple(labels)})

    # -- operations --------------------------------------------------------------------------------

    def mask(self, keep: np.ndarray) -> Raster:
        """No data wherever ``keep`` (a (rows, cols) bool array) is False."""
        values = np.where(keep, self.values, np.nan) if not keep.all() else self.values
        return self.replace(values=values)

    def mask_outside(self, shape_in_crs: BaseGeometry) -> Raster:
        """No data where a pixel's centre is outside the shape (in the grid's CRS)."""
        from eotasks.raster.aoi import centre_inside

        return self.mask(centre_inside(shape_in_crs, self.grid))

    def evaluate(self, programs: Sequence[Program], dtype: Any = np.float64) -> Raster:
        from eotasks.raster.evaluate import evaluate

        return evaluate(self, programs, dtype)

    def warp(self, grid: Grid, resampling: Resampling) -> Raster:
        from eotasks.raster.warp import warp

        return warp(self, grid, resampling)

    def to_cog(self, path: Path, *, dtype: Any, nodata: float | None, band_names: Sequence[str] | None = None) -> None:
        from eotasks.raster.encode import write_cog

        write_cog(self, path, dtype=dtype, nodata=nodata, band_names=band_names)

    def to_xarray(self) -> xarray.DataArray:
        """A DataArray with these dims, labels and x/y pixel-centre coordinates; CRS in attrs."""
        import xarray as xr

        t = self.grid.transform
        coords: dict[str, Any] = {dim: list(labels) for dim, labels in self.labels.items()}
        coords["x"] = t.c + (np.arange(self.grid.width) + 0.5) * t.a
        coords["y"] = t.f + (np.arange(self.grid.height) + 0.5) * t.e
        return xr.DataArray(self.values, dims=self.dims, coords=coords, attrs={"crs": self.grid.crs, **self.attrs})
