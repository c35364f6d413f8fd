"""A realistic synthetic time series for demos and tests: one 4.2 x 4.2 km area through a year.

Sentinel-2 L2A scenes (12 spectral bands + SCL, 10/20/60 m, baseline-04.00 scaling) and Landsat 8
Collection 2 scenes (B1-B11 + QA_PIXEL, 30 m, 15 m panchromatic, Collection 2 scaling) over fields
whose NDVI follows a growing season, a lake, bare soil, forest, and clouds that drift across the
area with their shadows, flagged in each product's mask band exactly as the real products do.

Everything is derived from one 5 m "truth" raster per date, averaged down to each band's grid, so
coarser bands are consistent with finer ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping

from eotasks.catalog.ids import s2_view_id
from eotasks.catalog.scenes import asset_spec, upsert_scene
from eotasks.db import SceneRecord
from eotasks.raster.aoi import footprint_geojson
from eotasks.raster.encode import write_cog_array
from eotasks.sensors import LANDSAT8, SENTINEL2_L2A

CRS = "EPSG:32618"
ORIGIN = (460000.0, 4186200.0)  # upper-left corner, UTM 18N (Virginia's Eastern Shore)
SIZE_M = 4200
BASE = 5.0  # truth raster pixel size
N = int(SIZE_M / BASE)
YEAR = 2023
S2_TILE = "18SVG"
LANDSAT_PATH_ROW = "014034"

# Reflectance spectra (coastal, blue, green, red, re1, re2, re3, nir, nir08, wv, swir1, swir2, cirrus, pan).
_KEYS = ("coastal", "blue", "green", "red", "re1", "re2", "re3", "nir", "nir08", "wv", "swir1", "swir2", "cirrus", "pan")
_SOIL = np.array([0.09, 0.10, 0.13, 0.17, 0.20, 0.22, 0.24, 0.26, 0.27, 0.27, 0.33, 0.28, 0.01, 0.18])
_VEG = np.array([0.03, 0.035, 0.075, 0.035, 0.12, 0.30, 0.38, 0.42, 0.43, 0.40, 0.22, 0.11, 0.005, 0.08])
_WATER = np.array([0.07, 0.065, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.005, 0.003, 0.001, 0.035])
_CLOUD = np.array([0.55, 0.56, 0.57, 0.58, 0.59, 0.60, 0.60, 0.61, 0.61, 0.55, 0.42, 0.33, 0.30, 0.58])

S2_BANDS = {  # band -> (resolution, spectrum key)
    "B01": (60, "coastal"),
    "B02": (10, "blue"),
    "B03": (10, "green"),
    "B04": (10, "red"),
    "B05": (20, "re1"),
    "B06": (20, "re2"),
    "B07": (20, "re3"),
    "B08": (10, "nir"),
    "B8A": (20, "nir08"),
    "B09": (60, "wv"),
    "B11": (20, "swir1"),
    "B12": (20, "swir2"),
}
L8_BANDS = {
    "B1": (30, "coastal"),
    "B2": (30, "blue"),
    "B3": (30, "green"),
    "B4": (30, "red"),
    "B5": (30, "nir"),
    "B6": (30, "swir1"),
    "B7": (30, "swir2"),
    "B8": (15, "pan"),
    "B9": (30, "cirrus"),
}

# Land cover classes of the truth raster.
CROP, SOIL, FOREST, WATER = 1, 2, 3, 4


@dataclass(frozen=True)
class Landscape:
    cover: np.ndarray  # class per 5 m pixel
    parcel: np.ndarray  # parcel id per 5 m pixel
    sos: np.ndarray  # start of season (day of year) per parcel
    eos: np.ndarray  # end of season per parcel
    fields: list[dict[str, Any]]  # parcel polygons (UTM) with their class


def _landscape(n: int = N, seed: int = 7) -> Landscape:
    """Parcels of 350-700 m, a lake and a creek on an n x n truth raster of 5 m pixels."""
    rng = np.random.default_rng(seed)
    cuts = max(5, n // 140)
    cuts_x = np.sort(rng.choice(np.arange(80, n - 80, 20), cuts, replace=False))
    cuts_y = np.sort(rng.choice(np.arange(80, n - 80, 20), cuts, replace=False))
    xs = np.concatenate([[0], cuts_x, [n]])
    ys = np.concatenate([[0], cuts_y, [n]])
    cover = np.zeros((n, n), np.uint8)
    parcel = np.zeros((n, n), np.int32)
    fields = []
    classes = rng.choice([CROP, CROP, CROP, CROP, CROP, SOIL, FOREST], size=(cuts + 1) ** 2)
    classes[0] = CROP  # the north-west parcel is always a crop field (the README's example AOI)
    pid = 0
    for j in range(cuts + 1):
        for i in range(cuts + 1):
            r0, r1, c0, c1 = ys[j], ys[j + 1], xs[i], xs[i + 1]
            # A 2-pixel (10 m) track between parcels, as bare soil.
            cover[r0:r1, c0:c1] = SOIL
            cover[r0 + 2 : r1 - 2, c0 + 2 : c1 - 2] = classes[pid]
            parcel[r0:r1, c0:c1] = pid
            x0, y0 = ORIGIN[0] + c0 * BASE, ORIGIN[1] - r0 * BASE
            fields.append(
                {
                    "id": pid,
                    "class": int(classes[pid]),
                    "utm": box(x0 + 2 * BASE, ORIGIN[1] - (r1 - 2) * BASE, ORIGIN[0] + (c1 - 2) * BASE, y0 - 2 * BASE),
                }
            )
            pid += 1
    # A lake in the south-east and a meandering creek.
    yy, xx = np.mgrid[0:n, 0:n]
    lake = ((xx - 0.78 * n) / (0.14 * n)) ** 2 + ((yy - 0.8 * n) / (0.1 * n)) ** 2 <= 1
    creek = np.abs(yy - (0.45 * n + 0.06 * n * np.sin(xx / n * 9))) < 3
    cover[lake | creek] = WATER
    sos = rng.uniform(95, 150, pid)
    eos = sos + rng.uniform(90, 140, pid)
    return Landscape(cover, parcel, sos, eos, fields)


def _pixels(size_m: int) -> int:
    if size_m % 60:
        raise ValueError("size_m must be a multiple of 60 m so that every band's grid fits")
    return int(size_m / BASE)


def _veg_fraction(land: Landscape, doy: int) -> np.ndarray:
    """Fractional vegetation cover per 5 m pixel: a double-logistic season per crop parcel."""
    season = 1 / (1 + np.exp(-(doy - land.sos) / 7)) - 1 / (1 + np.exp(-(doy - land.eos) / 9))
    crop_fv = 0.08 + 0.85 * season
    fv = np.where(land.cover == CROP, crop_fv[land.parcel], 0.0)
    fv = np.where(land.cover == FOREST, 0.75 + 0.15 * np.sin((doy - 100) / 365 * 2 * np.pi), fv)
    fv = np.where(land.cover == SOIL, 0.05, fv)
    return fv.astype(np.float32)


def _clouds(rng: np.random.Generator, day: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Cloud optical fraction (0-1) and a shadow flag per 5 m pixel; clouds drift east over the year."""
    if rng.random() < 0.4:
        return np.zeros((n, n), np.float32), np.zeros((n, n), bool)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    c = np.zeros((n, n), np.float32)
    for _ in range(rng.integers(1, 4)):
        cx = (rng.uniform(0, 1) + day / 120) % 1.2 * n - 0.1 * n
        cy = rng.uniform(0.1, 0.9) * n
        sx, sy = rng.uniform(0.05, 0.2) * n, rng.uniform(0.05, 0.15) * n
        c += rng.uniform(0.7, 1.6) * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    c = np.clip(c, 0, 1)
    shadow = np.zeros((n, n), bool)
    shadow[40:, 60:] = c[:-40, :-60] > 0.5  # the sun is in the south-west: shadows fall north-east
    return c, shadow & (c < 0.2)


def _truth(
    land: Landscape, fv: np.ndarray, cloud: np.ndarray, shadow: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    out = {}
    water = land.cover == WATER
    for k, key in enumerate(_KEYS):
        surface = fv * _VEG[k] + (1 - fv) * _SOIL[k]
        surface = np.where(water, _WATER[k], surface)
        surface = surface + rng.normal(0, 0.004, surface.shape).astype(np.float32)
        surface = np.where(shadow, surface * 0.45, surface)
        out[key] = np.clip((1 - cloud) * surface + cloud * _CLOUD[k], 0.0005, 1.2).astype(np.float32)
    return out


def _down(a: np.ndarray, res: float) -> np.ndarray:
    """Average 5 m pixels into ``res`` pixels."""
    f, n = int(res / BASE), a.shape[0]
    return a.reshape(n // f, f, n // f, f).mean(axis=(1, 3))


def _sample(a: np.ndarray, res: float) -> np.ndarray:
    """One 5 m pixel per ``res`` pixel: class maps and bit masks are sampled, never averaged."""
    f, n = int(res / BASE), a.shape[0]
    return a.reshape(n // f, f, n // f, f)[:, 0, :, 0]


def _transform(res: float) -> Affine:
    return Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1])


def _write(path: Path, data: np.ndarray, res: float, nodata: float | None = 0) -> None:
    write_cog_array(path, data, CRS, _transform(res), nodata)


def _scl(land: Landscape, fv: np.ndarray, cloud: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    scl = np.where(fv > 0.3, 4, 5).astype(np.uint8)  # vegetation / not vegetated
    scl[land.cover == WATER] = 6
    scl[shadow] = 3
    scl[(cloud > 0.05) & (cloud <= 0.2)] = 10  # thin cirrus
    scl[(cloud > 0.2) & (cloud <= 0.5)] = 8  # cloud, medium probability
    scl[cloud > 0.5] = 9  # cloud, high probability
    return scl


def _qa_pixel(land: Landscape, cloud: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """Collection 2 QA_PIXEL bits: 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow, 6 clear, 7 water,
    8-9 cloud confidence, 10-11 shadow confidence, 14-15 cirrus confidence."""
    qa = np.zeros(cloud.shape, np.uint16)
    high, medium, thin = cloud > 0.5, (cloud > 0.2) & (cloud <= 0.5), (cloud > 0.05) & (cloud <= 0.2)
    qa |= np.where(high, 1 << 3, 0).astype(np.uint16)
    qa |= np.where(high, 3 << 8, np.where(medium, 2 << 8, 1 << 8)).astype(np.uint16)
    qa |= np.where(thin, (1 << 2) | (3 << 14), 1 << 14).astype(np.uint16)
    qa |= np.where(shadow, (1 << 4) | (3 << 10), 1 << 10).astype(np.uint16)
    clear = ~(high | medium | thin | shadow)
    qa |= np.where(clear, 1 << 6, 0).astype(np.uint16)
    qa |= np.where((land.cover == WATER) & clear, 1 << 7, 0).astype(np.uint16)
    # Dilated cloud: clear pixels next to a cloud.
    near = np.zeros_like(high)
    near[1:, :] |= high[:-1, :]
    near[:-1, :] |= high[1:, :]
    near[:, 1:] |= high[:, :-1]
    near[:, :-1] |= high[:, 1:]
    qa |= np.where(near & ~high, 1 << 1, 0).astype(np.uint16)
    return qa


def _record(
    view_id: str, scene_id: str, sensor: str, date: dt.date, cloud: float, assets: dict[str, Any], mask: str, size_m: int
) -> SceneRecord:
    bounds = (ORIGIN[0], ORIGIN[1] - size_m, ORIGIN[0] + size_m, ORIGIN[1])
    return SceneRecord(
        view_id=view_id,
        scene_id=scene_id,
        sensor=sensor,
        date=date,
        cloud_cover=round(cloud, 2),
        crs=CRS,
        footprint=footprint_geojson(bounds, CRS),
        assets=assets,
        mask_band=mask,
    )


def demo_fields(size_m: int = SIZE_M) -> list[dict[str, Any]]:
    """The demo's parcels as GeoJSON Features in lon/lat (class 1 = crop, 2 = bare soil, 3 = forest)."""
    to_ll = Transformer.from_crs(CRS, 4326, always_xy=True).transform
    return [
        {
            "type": "Feature",
            "properties": {"id": f["id"], "class": f["class"]},
            "geometry": mapping(shapely.transform(f["utm"], to_ll, interleaved=False)),
        }
        for f in _landscape(_pixels(size_m)).fields
    ]


def generate_demo(
    out_dir: str | Path,
    s2_scenes: int = 24,
    landsat_scenes: int = 23,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    s2_every_days: int = 15,
    landsat_every_days: int = 16,
    size_m: int = SIZE_M,
) -> list[SceneRecord]:
    """Write the COGs under ``out_dir`` and register every scene in the catalogue."""
    out_dir = Path(out_dir).resolve()
    n = _pixels(size_m)
    land = _landscape(n)
    records = []
    total = s2_scenes + landsat_scenes
    plan = [("S2", dt.date(YEAR, 1, 5) + dt.timedelta(days=s2_every_days * i), i) for i in range(s2_scenes)]
    plan += [("L8", dt.date(YEAR, 1, 10) + dt.timedelta(days=landsat_every_days * i), i) for i in range(landsat_scenes)]
    for done, (kind, date, i) in enumerate(plan, start=1):
        rng = np.random.default_rng(date.toordinal() * (3 if kind == "S2" else 5))
        doy = date.timetuple().tm_yday
        fv = _veg_fraction(land, doy)
        cloud, shadow = _clouds(rng, date.toordinal() - dt.date(YEAR, 1, 1).toordinal(), n)
        truth = _truth(land, fv, cloud, shadow, rng)
        if kind == "S2":
            view_id = s2_view_id(S2_TILE, date, 0, level="L2A")
            scene_id = f"S2{'AB'[i % 2]}_tile_{date:%Y%m%d}_{S2_TILE}_0"
            folder = out_dir / "sentinel2l2a" / scene_id
            folder.mkdir(parents=True, exist_ok=True)
            assets = {}
            for band, (res, key) in S2_BANDS.items():
                dn = np.clip(np.round(_down(truth[key], res) * 10000 + 1000), 1, 65535).astype(np.uint16)
                _write(folder / f"{band}.tif", dn, res)
                assets[band] = asset_spec(
                    str(folder / f"{band}.tif"), res, SENTINEL2_L2A.default_scale, SENTINEL2_L2A.default_offset, 0, True
                )
            scl = _scl(land, fv, cloud, shadow)
            scl20 = _sample(scl, 20)
            _write(folder / "SCL.tif", scl20, 20)
            assets["SCL"] = asset_spec(str(folder / "SCL.tif"), 20, 1.0, 0.0, 0, False)
            cover = float(np.isin(scl20, (8, 9, 10)).mean() * 100)
            records.append(upsert_scene(_record(view_id, scene_id, "sentinel2l2a", date, cover, assets, "SCL", size_m), url))
        else:
            processed = date + dt.timedelta(days=9)
            product = f"LC08_L2SP_{LANDSAT_PATH_ROW}_{date:%Y%m%d}_{processed:%Y%m%d}_02_T1"
            folder = out_dir / "landsat8" / product
            folder.mkdir(parents=True, exist_ok=True)
            assets = {}
            for band, (res, key) in L8_BANDS.items():
                dn = np.clip(
                    np.round((_down(truth[key], res) - LANDSAT8.default_offset) / LANDSAT8.default_scale), 1, 65535
                ).astype(np.uint16)
                _write(folder / f"{product}_{band}.TIF", dn, res)
                assets[band] = asset_spec(
                    str(folder / f"{product}_{band}.TIF"), res, LANDSAT8.default_scale, LANDSAT8.default_offset, 0, True
                )
            # Surface temperature (Kelvin = DN * 0.00341802 + 149): warm soil, cool water and clouds.
            kelvin = _down(np.where(land.cover == WATER, 284.0, 300.0 - 12 * fv) * (1 - cloud) + 255.0 * cloud, 30)
            for band in ("B10", "B11"):
                dn = np.round((kelvin - 149.0) / 0.00341802).astype(np.uint16)
                _write(folder / f"{product}_{band}.TIF", dn, 30)
                assets[band] = asset_spec(str(folder / f"{product}_{band}.TIF"), 30, 0.00341802, 149.0, 0, True)
            qa = _qa_pixel(land, cloud, shadow)
            qa30 = _sample(qa, 30)
            _write(folder / f"{product}_QA_PIXEL.TIF", qa30, 30, nodata=1)
            assets["QA_PIXEL"] = asset_spec(str(folder / f"{product}_QA_PIXEL.TIF"), 30, 1.0, 0.0, 1, False)
            cover = float((((qa30 >> 3) & 1) | ((qa30 >> 2) & 1)).mean() * 100)
            records.append(
                upsert_scene(_record(f"L8/{product}", product, "landsat8", date, cover, assets, "QA_PIXEL", size_m), url)
            )
        if progress:
            progress(done, total)
    return records
