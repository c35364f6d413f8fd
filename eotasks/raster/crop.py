"""Windowed reads of only the pixels an AOI needs, on one common grid.

The output grid is the pixel grid of the coarsest band used, cut to the pixels whose centres lie
inside the AOI's bounds (in the scene's CRS). Finer bands are read over exactly the same bounds
and averaged onto that grid (``Resampling.average``: the mean reflectance of the finer pixels that
make up each coarse pixel). A pixel belongs to a polygon AOI when its centre is inside it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from eotasks.errors import AOIError, AssetReadError
from eotasks.raster.aoi import to_crs
from eotasks.assets import open_asset


@dataclass(frozen=True)
class Asset:
    """One band file of a scene, as the catalogue describes it."""

    href: str
    resolution: float
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    spectral: bool = True
    unit: str = "reflectance"  # what DN x scale + offset is: reflectance, kelvin, radiance, DN
    constants: dict[str, float] | None = field(default=None, compare=False, hash=False)  # e.g. K1, K2 of a thermal band


@dataclass(frozen=True)
class Grid:
    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))


@dataclass
class Cropped:
    """Raw band values on one grid, with which pixels are valid and inside the AOI."""

    grid: Grid
    data: dict[str, np.ndarray]  # band -> raw values (the file's dtype)
    valid: dict[str, np.ndarray]  # band -> bool, False where the band is nodata
    inside: np.ndarray  # bool, True where the pixel belongs to the AOI
    assets: dict[str, Asset] = field(default_factory=dict)
    aoi: BaseGeometry | None = None  # the AOI in lon/lat these pixels were cut by (None: whole scene)

    def reflectance(self, band: str) -> np.ndarray:
        """float64 values: DN * scale + offset for spectral bands, raw values for mask bands."""
        asset = self.assets[band]
        values = self.data[band].astype(np.float64)
        if asset.spectral and (asset.scale != 1.0 or asset.offset != 0.0):
            values = values * asset.scale + asset.offset
        return values


def centre_window(bounds: tuple[float, float, float, float], transform: Affine, width: int, height: int) -> Window | None:
    """Pixels of a north-up grid whose centres lie within ``bounds``; None when there are none."""
    minx, miny, maxx, maxy = bounds
    inv = ~transform
    c0, r0 = inv @ (minx, maxy)
    c1, r1 = inv @ (maxx, miny)
    col_start = max(math.ceil(c0 - 0.5), 0)
    col_stop = min(math.floor(c1 - 0.5) + 1, width)
    row_start = max(math.ceil(r0 - 0.5), 0)
    row_stop = min(math.floor(r1 - 0.5) + 1, height)
    if col_stop <= col_start or row_stop <= row_start:
        return None
    return Window(col_start, row_start, col_stop - col_start, row_stop - row_start)


@contextmanager
def open_band(href: str) -> Iterator[rasterio.DatasetReader]:
    """A band's file, open; a file that cannot be opened is an AssetReadError."""
    try:
        with open_asset(href) as dataset:
            yield dataset
    except rasterio.errors.RasterioIOError as exc:
        raise AssetReadError(f"cannot open {href}: {exc}") from exc


def read_onto_grid(asset: Asset, grid: Grid, resampling: Resampling, band: str = "") -> tuple[np.ndarray, np.ndarray]:
    """One band over ``grid``'s bounds, on ``grid``'s pixels: an exact window read when the band is
    on that grid, else resampled (``average`` for finer reflectance, ``nearest`` for class masks)."""
    with open_band(asset.href) as src:
        return read_open_band(src, asset, grid, resampling, band)


def read_open_band(src: rasterio.DatasetReader, asset: Asset, grid: Grid, resampling: Resampling, band: str) -> tuple[np.ndarray, np.ndarray]:
    """``read_onto_grid`` on a dataset that is already open: values, and where they are not nodata.

    The band's nodata is the catalogue's (the product's own metadata, or the sensor's documented
    fill), else the file's tag: ESA's JPEG 2000 bands carry no tag, and GDAL's resampling honours
    only the tag, so a 10 m band averaged onto 20 m would mix its zero fill into valid pixels (half
    values at every tile edge). Averages are therefore means of the valid finer pixels only."""
    nodata = asset.nodata if asset.nodata is not None else src.nodata
    try:
        if src.crs.to_string() != grid.crs:
            raise AssetReadError(f"band {band} is in {src.crs}, not the scene's {grid.crs}")
        own = src.window(*grid.bounds)
        if own.width == grid.width and own.height == grid.height and own.col_off == round(own.col_off) and own.row_off == round(own.row_off):
            values = src.read(1, window=Window(round(own.col_off), round(own.row_off), grid.width, grid.height))
        elif resampling == Resampling.average and nodata is not None:
            return _valid_average(src, own, grid, nodata)
        else:
            values = src.read(1, window=own, out_shape=(grid.height, grid.width), resampling=resampling)
    except rasterio.errors.RasterioIOError as exc:
        raise AssetReadError(f"cannot read band {band} from {asset.href}: {exc}") from exc
    if nodata is not None and not np.isnan(nodata):
        return values, values != nodata
    return values, np.ones(values.shape, bool)


def _valid_average(src: rasterio.DatasetReader, own: Window, grid: Grid, nodata: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the valid finer pixels under each coarse pixel (float64), valid where any is.

    Whole factors (10 -> 20 or 60 m, 20 -> 60 m, 15 -> 30 m: every Sentinel-2 and Landsat case) are
    block means of one native read; any other ratio goes through GDAL's average on a warped view
    that declares the nodata value, which GDAL then leaves out."""
    kx, ky = own.width / grid.width, own.height / grid.height
    whole = abs(kx - round(kx)) < 1e-6 and abs(ky - round(ky)) < 1e-6 and abs(own.col_off - round(own.col_off)) < 1e-6 \
        and abs(own.row_off - round(own.row_off)) < 1e-6
    if whole:
        kx, ky = round(kx), round(ky)
        window = Window(round(own.col_off), round(own.row_off), grid.width * kx, grid.height * ky)
        fine = src.read(1, window=window, boundless=True, fill_value=nodata).astype(np.float64)
        ok = fine != nodata if not np.isnan(nodata) else ~np.isnan(fine)
        shape = (grid.height, ky, grid.width, kx)
        counts = ok.reshape(shape).sum(axis=(1, 3))
        sums = np.where(ok, fine, 0.0).reshape(shape).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / counts, nodata)
        return mean, counts > 0
    from rasterio.vrt import WarpedVRT

    with WarpedVRT(src, src_nodata=nodata, nodata=nodata) as vrt:
        values = vrt.read(1, window=vrt.window(*grid.bounds), out_shape=(grid.height, grid.width), resampling=Resampling.average)
    return values, (values != nodata) if not np.isnan(nodata) else ~np.isnan(values)


def crop_to_aoi(
    assets: dict[str, Asset],
    bands: list[str],
    aoi: BaseGeometry | None,
    mask_outside: bool,
    resampling: Resampling = Resampling.average,
) -> Cropped:
    """Read ``bands`` over the AOI (lon/lat; None = whole scene) onto the coarsest band's grid."""
    if not bands:
        raise ValueError("no bands to read")
    reference = max(bands, key=lambda b: assets[b].resolution)
    with open_band(assets[reference].href) as ref:
        crs = ref.crs
        if aoi is not None:
            aoi_crs = to_crs(aoi, crs)
            window = centre_window(aoi_crs.bounds, ref.transform, ref.width, ref.height)
            if window is None:
                raise AOIError("The AOI does not intersect the scene", field="params.geometry")
        else:
            aoi_crs = None
            window = Window(0, 0, ref.width, ref.height)
        grid = Grid(crs.to_string(), ref.window_transform(window), int(window.width), int(window.height))
        # The reference band is open already: read it now rather than open it a second time.
        data: dict[str, np.ndarray] = {}
        valid: dict[str, np.ndarray] = {}
        data[reference], valid[reference] = read_open_band(ref, assets[reference], grid, resampling, reference)

    for band in bands:
        if band != reference:
            data[band], valid[band] = read_onto_grid(assets[band], grid, resampling, band)
    data = {b: data[b] for b in bands}  # request order
    valid = {b: valid[b] for b in bands}

    if aoi_crs is not None and mask_outside:
        inside = geometry_mask([mapping(aoi_crs)], out_shape=(grid.height, grid.width), transform=grid.transform, invert=True, all_touched=False)
        if not inside.any():
            raise AOIError("No pixel centre of the scene falls inside the AOI", field="params.geometry")
    else:
        inside = np.ones((grid.height, grid.width), bool)
    return Cropped(grid, data, valid, inside, {b: assets[b] for b in bands}, aoi)
