"""Cloud-Optimized GeoTIFF writing into memory (the result store takes bytes)."""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio.io import MemoryFile


def cog_bytes(
    data: np.ndarray,
    crs: str,
    transform: Affine,
    nodata: float | None,
    band_names: list[str] | None = None,
    blocksize: int = 512,
    compress: str = "DEFLATE",
) -> bytes:
    """``data`` is (bands, rows, cols). Tiled, compressed, with overviews when the image is large."""
    if data.ndim == 2:
        data = data[np.newaxis]
    count, height, width = data.shape
    profile = dict(
        driver="COG", count=count, height=height, width=width, dtype=data.dtype, crs=crs,
        transform=transform, nodata=nodata, blocksize=blocksize, compress=compress,
        predictor="YES", overview_resampling="nearest" if data.dtype.kind in "iu" else "average",
        BIGTIFF="IF_SAFER",
    )
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
            if band_names:
                for i, name in enumerate(band_names, start=1):
                    dst.set_band_description(i, name)
        return mem.read()
