"""Writing rasters to files: the one place where no data (NaN) becomes a file's nodata value.

Cloud-Optimized GeoTIFFs are staged as a tiled GeoTIFF on disk, one band at a time, and then
copied by GDAL's COG driver, so a large output is never held in memory twice (or once encoded).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine

from eotasks.raster.image import Raster


def filled(values: np.ndarray, dtype: Any, nodata: float | None) -> np.ndarray:
    """``values`` as ``dtype``, NaN replaced by ``nodata`` (when there is one)."""
    out = values.astype(dtype, copy=True)
    if nodata is not None and np.issubdtype(np.dtype(values.dtype), np.floating):
        out[np.isnan(values)] = nodata
    return out


def write_cog_array(
    path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float | None, band_names: Sequence[str] | None = None
) -> None:
    """``data`` (bands, rows, cols), already in its file dtype, as a COG at ``path``."""
    if data.ndim == 2:
        data = data[np.newaxis]
    _write_cog(Path(path), data.shape[0], data.shape[1:], data.dtype, lambda i: data[i], crs, transform, nodata, band_names)


def write_cog(raster: Raster, path: Path, *, dtype: Any, nodata: float | None, band_names: Sequence[str] | None = None) -> None:
    """A (bands, y, x) Raster as a COG of ``dtype``: no data written as ``nodata``, each band
    converted on its own (memory: one band in the file's dtype at a time)."""
    if raster.dims != ("bands", "y", "x"):
        raise ValueError(f"a GeoTIFF holds (bands, y, x), not {raster.dims}")
    names = list(band_names) if band_names is not None else (list(raster.bands) or None)
    _write_cog(
        Path(path),
        raster.values.shape[0],
        raster.grid.shape,
        np.dtype(dtype),
        lambda i: filled(raster.values[i], dtype, nodata),
        raster.grid.crs,
        raster.grid.transform,
        nodata,
        names,
    )


def _write_cog(
    path: Path,
    count: int,
    shape: tuple[int, ...],
    dtype: np.dtype,
    band: Callable[[int], np.ndarray],
    crs: str,
    transform: Affine,
    nodata: float | None,
    band_names: Sequence[str] | None,
    blocksize: int = 512,
    compress: str = "DEFLATE",
) -> None:
    """Tiled, compressed, predictor on, overviews when large (GDAL's COG driver decides)."""
    height, width = shape
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".cog-") as tmp:
        staging = Path(tmp) / "staging.tif"
        profile = dict(
            driver="GTiff",
            count=count,
            height=height,
            width=width,
            dtype=dtype,
            crs=crs,
            transform=transform,
            nodata=nodata,
            tiled=True,
            blockxsize=blocksize,
            blockysize=blocksize,
            compress="NONE",
            BIGTIFF="IF_SAFER",
        )
        with rasterio.open(staging, "w", **profile) as dst:
            for i in range(count):
                dst.write(band(i), i + 1)
                if band_names:
                    dst.set_band_description(i + 1, band_names[i])
        rasterio.shutil.copy(
            staging,
            path,
            driver="COG",
            BLOCKSIZE=blocksize,
            COMPRESS=compress,
            PREDICTOR="YES",
            OVERVIEW_RESAMPLING="NEAREST" if dtype.kind in "iu" else "AVERAGE",
            BIGTIFF="IF_SAFER",
        )


def cog_bytes(
    data: np.ndarray, crs: str, transform: Affine, nodata: float | None, band_names: Sequence[str] | None = None
) -> bytes:
    """A small COG in memory (tests, previews)."""
    with tempfile.TemporaryDirectory(prefix="eotasks-cog-") as tmp:
        path = Path(tmp) / "out.tif"
        write_cog_array(path, data, crs, transform, nodata, band_names)
        return path.read_bytes()
