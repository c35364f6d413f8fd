"""Windowed reads of only the pixels an AOI needs, on one common grid, as a ``Raster``.

The grid is the pixel grid of the coarsest band used, cut to the pixels whose centres lie inside
the AOI's bounds (in the scene's CRS). Finer bands are read over exactly the same bounds and
averaged onto that grid (``Resampling.average``: the mean of the *valid* finer pixels that make up
each coarse pixel); class and bit-flag bands with ``nearest``. A pixel belongs to a polygon AOI
when its centre is inside it.

Values are what the maths needs: each band's stored number times its scale plus its offset
(``Asset``: reflectance, kelvin or radiance), as float64, NaN where the band has no data. ``scaled=
False`` keeps the stored numbers (``lbe`` gives them back untouched), as float32, which holds every
16-bit value exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from eotasks.assets import open_asset
from eotasks.errors import AOIError, AssetReadError
from eotasks.raster.aoi import centre_inside, to_crs
from eotasks.raster.grid import Grid, centre_window
from eotasks.raster.image import Raster


@dataclass(frozen=True)
class Asset:
    """One band file of a scene, as the catalogue describes it (the only form an asset takes)."""

    href: str
    resolution: float
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    spectral: bool = True
    unit: str = "reflectance"  # what DN x scale + offset is: reflectance, kelvin, radiance, DN
    constants: dict[str, float] | None = field(default=None, compare=False, hash=False)  # e.g. K1, K2 of a thermal band

    @property
    def fill(self) -> float:
        """The value that marks no data in the band's own numbers (the sensors' documented 0 when
        the catalogue does not say): what ``lbe`` writes outside the AOI."""
        return self.nodata if self.nodata is not None else 0.0


@contextmanager
def open_band(href: str) -> Iterator[rasterio.DatasetReader]:
    """A band's file, open; a file that cannot be opened is an AssetReadError."""
    try:
        with open_asset(href) as dataset:
            yield dataset
    except rasterio.errors.RasterioIOError as exc:
        raise AssetReadError(f"cannot open {href}: {exc}") from exc


def read_band(
    src: rasterio.DatasetReader, asset: Asset, grid: Grid, resampling: Resampling, band: str = "", scaled: bool = True
) -> np.ndarray:
    """One band over ``grid``'s bounds, on ``grid``'s pixels, NaN where it has no data: an exact
    window read when the band is on that grid, else resampled.

    The band's nodata is the catalogue's (the product's own metadata, or the sensor's documented
    fill), else the file's tag: ESA's JPEG 2000 bands carry no tag, and GDAL's resampling honours
    only the tag, so a 10 m band averaged onto 20 m would mix its zero fill into valid pixels (half
    values at every tile edge). Averages are therefore means of the valid finer pixels only."""
    nodata = asset.nodata if asset.nodata is not None else src.nodata
    try:
        if src.crs.to_string() != grid.crs:
            raise AssetReadError(f"band {band} is in {src.crs}, not the scene's {grid.crs}")
        own = src.window(*grid.bounds)
        if (
            own.width == grid.width
            and own.height == grid.height
            and own.col_off == round(own.col_off)
            and own.row_off == round(own.row_off)
        ):
            stored = src.read(1, window=Window(round(own.col_off), round(own.row_off), grid.width, grid.height))
            ok = _not_nodata(stored, nodata)
        elif resampling == Resampling.average and nodata is not None:
            stored, ok = _valid_average(src, own, grid, nodata)
        else:
            stored = src.read(1, window=own, out_shape=grid.shape, resampling=resampling)
            ok = _not_nodata(stored, nodata)
    except rasterio.errors.RasterioIOError as exc:
        raise AssetReadError(f"cannot read band {band} from {asset.href}: {exc}") from exc
    if scaled:
        values = stored.astype(np.float64)
        if asset.spectral and (asset.scale != 1.0 or asset.offset != 0.0):
            values = values * asset.scale + asset.offset
    else:
        values = stored.astype(np.float32)
    values[~ok] = np.nan
    return values


def _not_nodata(values: np.ndarray, nodata: float | None) -> np.ndarray:
    if nodata is None:
        return np.ones(values.shape, bool)
    if np.isnan(nodata):
        return ~np.isnan(values)
    return values != nodata


def _valid_average(src: rasterio.DatasetReader, own: Window, grid: Grid, nodata: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the valid finer pixels under each coarse pixel (float64), valid where any is.

    Whole factors (10 -> 20 or 60 m, 20 -> 60 m, 15 -> 30 m: every Sentinel-2 and Landsat case) are
    block means of one native read; any other ratio goes through GDAL's average on a warped view
    that declares the nodata value, which GDAL then leaves out."""
    kx, ky = own.width / grid.width, own.height / grid.height
    whole = (
        abs(kx - round(kx)) < 1e-6
        and abs(ky - round(ky)) < 1e-6
        and abs(own.col_off - round(own.col_off)) < 1e-6
        and abs(own.row_off - round(own.row_off)) < 1e-6
    )
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
        values = vrt.read(1, window=vrt.window(*grid.bounds), out_shape=grid.shape, resampling=Resampling.average)
    return values, _not_nodata(values, nodata)


class BandFiles:
    """The band files of one scene, each opened once however many windows are read from it."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self.assets = assets
        self._stack = ExitStack()
        self._open: dict[str, rasterio.DatasetReader] = {}

    def __enter__(self) -> BandFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def dataset(self, band: str) -> rasterio.DatasetReader:
        if band not in self._open:
            self._open[band] = self._stack.enter_context(open_band(self.assets[band].href))
        return self._open[band]

    def native_grid(self, band: str) -> Grid:
        src = self.dataset(band)
        return Grid(src.crs.to_string(), src.transform, src.width, src.height)

    def read_classes(self, band: str, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """A class or bit-flag band (a cloud mask) on ``grid``, nearest: its stored numbers as they
        are, and where it has data. Classes are not values: no scaling, no NaN."""
        src, asset = self.dataset(band), self.assets[band]
        nodata = asset.nodata if asset.nodata is not None else src.nodata
        if src.crs.to_string() != grid.crs:
            raise AssetReadError(f"band {band} is in {src.crs}, not the scene's {grid.crs}")
        try:
            stored = src.read(1, window=src.window(*grid.bounds), out_shape=grid.shape, resampling=Resampling.nearest)
        except rasterio.errors.RasterioIOError as exc:
            raise AssetReadError(f"cannot read band {band} from {asset.href}: {exc}") from exc
        return stored, _not_nodata(stored, nodata)

    def read(self, bands: Sequence[str], grid: Grid, resampling: Resampling = Resampling.average, scaled: bool = True) -> Raster:
        """``bands`` on ``grid``: spectral bands resampled with ``resampling``, class bands with nearest."""
        planes = {}
        for band in bands:
            how = resampling if self.assets[band].spectral else Resampling.nearest
            planes[band] = read_band(self.dataset(band), self.assets[band], grid, how, band, scaled)
        # The files' own types, for a writer that gives the stored numbers back (lbe).
        dtypes = {band: self.dataset(band).dtypes[0] for band in bands}
        return Raster.of_bands(planes, grid, {"dtypes": dtypes})


def coarsest(assets: dict[str, Asset], bands: Sequence[str]) -> str:
    """The band whose grid the others are read onto."""
    if not bands:
        raise ValueError("no bands to read")
    return max(bands, key=lambda b: assets[b].resolution)


def aoi_grid(native: Grid, aoi_in_crs: BaseGeometry | None) -> Grid:
    """The native grid cut to the pixels whose centres lie within the AOI's bounds (all of it
    without an AOI); AOIError when there is no such pixel."""
    if aoi_in_crs is None:
        return native
    window = centre_window(aoi_in_crs.bounds, native.transform, native.width, native.height)
    if window is None:
        raise AOIError("The AOI does not intersect the scene", field="params.geometry")
    return native.window(window)


def read_aoi(
    assets: dict[str, Asset], bands: Sequence[str], aoi: BaseGeometry | None, mask_outside: bool, scaled: bool = True
) -> Raster:
    """Read ``bands`` over the AOI (lon/lat; None = whole scene) onto the coarsest band's grid, no
    data outside a polygon AOI (``mask_outside``; a bbox only crops)."""
    with BandFiles(assets) as files:
        native = files.native_grid(coarsest(assets, bands))
        aoi_in_crs = to_crs(aoi, native.crs) if aoi is not None else None
        grid = aoi_grid(native, aoi_in_crs)
        raster = files.read(bands, grid, scaled=scaled)
    if aoi_in_crs is not None and mask_outside:
        inside = centre_inside(aoi_in_crs, grid)
        if not inside.any():
            raise AOIError("No pixel centre of the scene falls inside the AOI", field="params.geometry")
        raster = raster.mask(inside)
    return raster


def read_for_grid(
    assets: dict[str, Asset], bands: Sequence[str], target: Grid, scaled: bool = True, margin_px: int = 3
) -> Raster:
    """``bands`` on their coarsest band's native grid over what ``target`` covers, with a margin of
    ``margin_px`` pixels for resampling kernels, unmasked: the AOI is applied on the target grid."""
    from rasterio.warp import transform_bounds

    with BandFiles(assets) as files:
        native = files.native_grid(coarsest(assets, bands))
        minx, miny, maxx, maxy = transform_bounds(target.crs, native.crs, *target.bounds, densify_pts=21)
        rx, ry = native.resolution
        bounds = (minx - margin_px * rx, miny - margin_px * ry, maxx + margin_px * rx, maxy + margin_px * ry)
        window = centre_window(bounds, native.transform, native.width, native.height)
        if window is None:
            raise AOIError("The output grid does not meet the scene", field="params.geometry")
        return files.read(bands, native.window(window), scaled=scaled)
