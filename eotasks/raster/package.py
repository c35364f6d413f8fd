"""``lbe`` outputs: raw DN values of each band at native resolution, packaged as SPEC §3 says.

- one Sentinel-2 band (no metadata)                         -> ``<scene_id>_<band>.jp2``
- one band, or merge with all bands at one resolution (no metadata) -> one GeoTIFF ``<scene_id>_<B1-B2>.tif``
- otherwise a zip of one GeoTIFF per band (or per resolution group with merge) plus metadata files

Each group is a Raster of the stored numbers (``read_aoi(..., scaled=False)``), no data as NaN;
files get each band's own nodata value and its file's dtype back.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from eotasks.raster.encode import filled, write_cog
from eotasks.raster.image import Raster


@dataclass(frozen=True)
class BandGroup:
    bands: tuple[str, ...]  # in request order
    resolution: float


def plan_groups(
    bands: list[str], resolutions: dict[str, float], merge: bool, nodata: dict[str, float | None] | None = None
) -> list[BandGroup]:
    """One group per band, or with ``merge`` one per resolution and nodata value (first-seen order,
    bands in request order). A GeoTIFF has one nodata value for all its bands, so bands whose nodata
    differ (Landsat's QA_PIXEL marks fill with 1, its SR bands with 0) go to separate files."""
    if not merge:
        return [BandGroup((b,), resolutions[b]) for b in bands]
    nodata = nodata or {}
    order: dict[tuple[float, float | None], list[str]] = {}
    for b in bands:
        order.setdefault((resolutions[b], nodata.get(b)), []).append(b)
    return [BandGroup(tuple(bs), res) for (res, _), bs in order.items()]


def write_jp2(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float | None) -> None:
    """Lossless JPEG 2000 (reversible 5/3 wavelet) with GeoJP2/GMLJP2 georeferencing."""
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        QUALITY=100,
        REVERSIBLE="YES",
        RESOLUTIONS=4,
    ) as dst:
        dst.write(data, 1)


def group_name(scene_id: str, group: BandGroup) -> str:
    return f"{scene_id}_{'-'.join(group.bands)}"


def package(
    scene_id: str,
    family: str,
    groups: list[tuple[BandGroup, Raster]],
    nodata: dict[str, float],
    metadata: dict[str, bytes],
    folder: Path,
) -> tuple[str, Path]:
    """The one file to publish, written into ``folder``: (name, path)."""

    def dtype_of(raster: Raster, band: str) -> str:
        return raster.attrs.get("dtypes", {}).get(band, "uint16")

    def tif(group: BandGroup, raster: Raster, path: Path) -> None:
        [nd] = {nodata[b] for b in group.bands}  # plan_groups keeps one nodata value per file
        [dtype] = {dtype_of(raster, b) for b in group.bands} or {"uint16"}
        write_cog(raster.select("bands", group.bands), path, dtype=dtype, nodata=nd, band_names=list(group.bands))

    if len(groups) == 1 and not metadata:
        group, raster = groups[0]
        if family == "sentinel2" and len(group.bands) == 1:
            band = group.bands[0]
            name = f"{scene_id}_{band}.jp2"
            write_jp2(
                folder / name,
                filled(raster.band(band), dtype_of(raster, band), nodata[band]),
                raster.grid.crs,
                raster.grid.transform,
                nodata[band],
            )
            return name, folder / name
        name = f"{group_name(scene_id, group)}.tif"
        tif(group, raster, folder / name)
        return name, folder / name
    all_bands = [b for g, _ in groups for b in g.bands]
    name = f"{scene_id}_{'-'.join(all_bands)}.zip"
    with zipfile.ZipFile(folder / name, "w", compression=zipfile.ZIP_STORED) as zf:  # COGs are compressed already
        for group, raster in groups:
            member = folder / f".{group_name(scene_id, group)}.tif"
            tif(group, raster, member)
            zf.write(member, f"{group_name(scene_id, group)}.tif")
            member.unlink()
        for meta_name, data in metadata.items():
            zf.writestr(meta_name, data, compress_type=zipfile.ZIP_DEFLATED)
    return name, folder / name
