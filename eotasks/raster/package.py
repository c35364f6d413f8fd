"""``lbe`` outputs: raw DN values of each band at native resolution, packaged as SPEC §3 says.

- one Sentinel-2 band (no metadata)                         -> ``<scene_id>_<band>.jp2``
- one band, or merge with all bands at one resolution (no metadata) -> one GeoTIFF ``<scene_id>_<B1-B2>.tif``
- otherwise a zip of one GeoTIFF per band (or per resolution group with merge) plus metadata files
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
from rasterio.io import MemoryFile

from eotasks.raster.cog import cog_bytes
from eotasks.raster.crop import Cropped


@dataclass(frozen=True)
class BandGroup:
    bands: tuple[str, ...]  # in request order
    resolution: float


def plan_groups(bands: list[str], resolutions: dict[str, float], merge: bool,
                nodata: dict[str, float | None] | None = None) -> list[BandGroup]:
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


def masked_dn(cropped: Cropped, band: str, nodata: float) -> np.ndarray:
    """The band's stored values, untouched, with ``nodata`` outside a polygon AOI."""
    values = cropped.data[band].copy()
    values[~cropped.inside] = nodata
    return values


def jp2_bytes(data: np.ndarray, crs: str, transform, nodata: float | None) -> bytes:
    """Lossless JPEG 2000 (reversible 5/3 wavelet) with GeoJP2/GMLJP2 georeferencing."""
    with MemoryFile(ext=".jp2") as mem:
        with mem.open(driver="JP2OpenJPEG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
                      crs=crs, transform=transform, nodata=nodata, QUALITY=100, REVERSIBLE="YES", RESOLUTIONS=4) as dst:
            dst.write(data, 1)
        return mem.read()


def group_name(scene_id: str, group: BandGroup) -> str:
    return f"{scene_id}_{'-'.join(group.bands)}"


def package(
    scene_id: str,
    family: str,
    groups: list[tuple[BandGroup, Cropped]],
    nodata: dict[str, float],
    metadata: dict[str, bytes],
) -> tuple[str, bytes]:
    """The one file to publish: (name, bytes)."""
    def tif(group: BandGroup, cropped: Cropped) -> bytes:
        stack = np.stack([masked_dn(cropped, b, nodata[b]) for b in group.bands])
        [nd] = {nodata[b] for b in group.bands}  # plan_groups keeps one nodata value per file
        return cog_bytes(stack, cropped.grid.crs, cropped.grid.transform, nd, list(group.bands))

    single = len(groups) == 1 and not metadata
    if single:
        group, cropped = groups[0]
        if family == "sentinel2" and len(group.bands) == 1:
            band = group.bands[0]
            return f"{scene_id}_{band}.jp2", jp2_bytes(masked_dn(cropped, band, nodata[band]), cropped.grid.crs, cropped.grid.transform, nodata[band])
        return f"{group_name(scene_id, group)}.tif", tif(group, cropped)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:  # COGs are compressed already
        for group, cropped in groups:
            zf.writestr(f"{group_name(scene_id, group)}.tif", tif(group, cropped))
        for name, data in metadata.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    all_bands = [b for g, _ in groups for b in g.bands]
    return f"{scene_id}_{'-'.join(all_bands)}.zip", buffer.getvalue()
