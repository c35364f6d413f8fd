"""Pictures: stretch or colormap computed values to 8-bit, and encode them (Pillow; GDAL for TIFF).

GDAL's PNG/JPEG drivers are several times slower than Pillow here, so only the georeferenced TIFF
goes through GDAL. A single-band colormapped picture is written as a paletted PNG (index 0 is
transparent), which is 3-4x smaller than RGBA.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.io import MemoryFile


@functools.lru_cache(maxsize=1)
def colormap_names() -> frozenset[str]:
    from matplotlib import colormaps

    names = set(colormaps)
    return frozenset(names | {f"{n}_r" for n in names if not n.endswith("_r")})


def colormap_lut(name: str, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colours sampled evenly along the Matplotlib colormap (its own LUT when n = 256),
    converted to bytes by Matplotlib itself (``bytes=True`` truncates; rounding would differ by one
    in most entries)."""
    from matplotlib import colormaps

    cmap = colormaps[name].resampled(n)
    return cmap(np.arange(n), bytes=True)[:, :3]


def parse_levels(levels: str | None, default: tuple[float, float] | None) -> tuple[float, float] | None:
    if levels is None:
        return default
    lo, hi = (float(x) for x in levels.split(","))
    return lo, hi


def stretch(band: np.ndarray, valid: np.ndarray, levels: tuple[float, float] | None) -> np.ndarray:
    """Linear stretch to 0-255: between ``levels``, or between the 2nd and 98th percentile of the valid pixels."""
    if levels is None:
        if not valid.any():
            return np.zeros(band.shape, np.uint8)
        lo, hi = np.percentile(band[valid], [2, 98])
    else:
        lo, hi = levels
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    with np.errstate(invalid="ignore"):
        out = np.clip((band - lo) * scale, 0, 255)
    return np.where(valid, np.round(out), 0).astype(np.uint8)


def class_index(band: np.ndarray, valid: np.ndarray, levels: tuple[float, float], classes: int) -> np.ndarray:
    """0..classes-1 along [lo, hi] (values outside clip to the ends); 0 where invalid."""
    lo, hi = levels
    with np.errstate(invalid="ignore"):
        t = np.clip((band - lo) / (hi - lo), 0, 1)
        idx = np.minimum((t * classes).astype(np.int64), classes - 1)
    return np.where(valid, idx, 0)


def colorize(
    band: np.ndarray, valid: np.ndarray, colormap: str, levels: tuple[float, float], colors_limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(class index per pixel, palette): palette[index] is the pixel's colour."""
    classes = colors_limit or 256
    return class_index(band, valid, levels, classes), colormap_lut(colormap, classes)


def encode(
    fmt: str,
    rgb: np.ndarray | None,
    alpha: np.ndarray,
    index: np.ndarray | None = None,
    palette: np.ndarray | None = None,
    crs: str | None = None,
    transform: Affine | None = None,
) -> bytes:
    """``rgb`` (3, rows, cols) uint8 or (``index``, ``palette``); ``alpha`` bool (True = visible)."""
    if rgb is None:
        if palette is None or index is None:
            raise ValueError("a picture needs rgb, or an index and its palette")
        rgb = np.moveaxis(palette[index], -1, 0)
    if fmt == "tiff":
        data = np.concatenate([rgb, (alpha * 255).astype(np.uint8)[None]])
        with MemoryFile() as mem:
            with mem.open(
                driver="GTiff",
                width=data.shape[2],
                height=data.shape[1],
                count=4,
                dtype="uint8",
                crs=crs,
                transform=transform,
                photometric="RGB",
                alpha="YES",
                compress="DEFLATE",
                tiled=True,
                blockxsize=256,
                blockysize=256,
            ) as dst:
                dst.write(data)
            return mem.read()
    buffer = io.BytesIO()
    if fmt == "jpeg":
        # JPEG has no alpha: what is hidden is black.
        Image.fromarray(np.moveaxis(np.where(alpha, rgb, 0), 0, -1)).save(buffer, "JPEG", quality=90)
    elif index is not None and palette is not None and len(palette) < 256:
        # Paletted PNG: entry 0 transparent, colours from 1.
        pal = np.vstack([[0, 0, 0], palette]).astype(np.uint8)
        img = Image.fromarray(np.where(alpha, index + 1, 0).astype(np.uint8), mode="P")
        img.putpalette(pal.ravel().tolist())
        img.save(buffer, "PNG", transparency=0, optimize=False)
    else:
        rgba = np.concatenate([rgb, (alpha * 255).astype(np.uint8)[None]])
        Image.fromarray(np.moveaxis(rgba, 0, -1), mode="RGBA").save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()
