"""``save_result``'s file formats (``GET /file_formats``).

- ``GTiff``: a Cloud-Optimised GeoTIFF, float32, NaN as nodata; one band per label of the cube's
  non-spatial dimensions (``t`` x ``bands``), each band's description its labels (``2023-01-05 B04``).
- ``netCDF``: CF conventions, one variable per band over (``t``,) ``y``, ``x``, with the grid mapping.
- ``JSON``: a vector cube as ``{date: [[value per band] per geometry]}`` (without ``t``: ``[[value
  per band] per geometry]``), the form openEO's Python client reads into a pandas frame; a raster
  cube as xarray's dictionary form; any other value as itself.
- ``CSV``: a vector cube, one row per geometry and date (``date,feature_index,<band>...``).
- ``PNG``: one or three bands (or four, the last alpha), values clipped to 0..255; no data transparent.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from eotasks.openeo.errors import OpenEOError
from eotasks.openeo.values import VectorCube, to_python
from eotasks.raster.image import Raster

FORMATS: dict[str, dict[str, Any]] = {
    "GTiff": {"title": "GeoTiff (Cloud-Optimised)", "gis_data_types": ["raster"], "parameters": {}},
    "netCDF": {"title": "Network Common Data Form (CF)", "gis_data_types": ["raster"], "parameters": {}},
    "JSON": {"title": "JavaScript Object Notation", "gis_data_types": ["vector", "other"], "parameters": {}},
    "CSV": {"title": "Comma-separated values", "gis_data_types": ["vector"], "parameters": {}},
    "PNG": {"title": "Portable Network Graphics", "gis_data_types": ["raster"], "parameters": {}},
}
BY_NAME = {name.lower(): name for name in FORMATS} | {"gtif": "GTiff", "geotiff": "GTiff", "tiff": "GTiff", "nc": "netCDF"}
MEDIA = {
    "GTiff": "image/tiff; application=geotiff",
    "netCDF": "application/x-netcdf",
    "JSON": "application/json",
    "CSV": "text/csv",
    "PNG": "image/png",
}
EXTENSION = {"GTiff": "tif", "netCDF": "nc", "JSON": "json", "CSV": "csv", "PNG": "png"}


def format_named(name: str) -> str:
    found = BY_NAME.get(str(name).lower())
    if found is None:
        raise OpenEOError("FormatUnsupported", f"Format '{name}' is not supported: one of {', '.join(FORMATS)}", status=400)
    return found


def encode(data: Any, format: str, options: dict[str, Any]) -> tuple[str, bytes]:
    name = format_named(format)
    out = f"openEO.{EXTENSION[name]}"
    if name == "GTiff":
        return out, _gtiff(_raster(data, name))
    if name == "netCDF":
        return out, _netcdf(_raster(data, name))
    if name == "PNG":
        return out, _png(_raster(data, name))
    if name == "CSV":
        if not isinstance(data, VectorCube):
            raise OpenEOError("FormatUnsuitable", "CSV holds vector cubes (aggregate_spatial's result) here", status=400)
        return out, _csv(data)
    return out, json_bytes(data)


def _raster(data: Any, name: str) -> Raster:
    if not isinstance(data, Raster):
        raise OpenEOError("FormatUnsuitable", f"{name} holds raster data cubes; save this result as JSON", status=400)
    return data


def planes_of(cube: Raster) -> tuple[np.ndarray, list[str]]:
    """(planes, name of each): every label combination of the non-spatial dimensions."""
    other = cube.dims[:-2]
    values = cube.values.reshape(-1, *cube.grid.shape)
    names = [""]
    for dim in other:
        labels = [str(v).replace("T00:00:00Z", "") for v in cube.labels.get(dim, range(cube.values.shape[cube.axis(dim)]))]
        names = [f"{n} {label}".strip() for n in names for label in labels]
    return values, names or ["band"]


def _gtiff(cube: Raster) -> bytes:
    planes, names = planes_of(cube)
    flat = Raster(planes, cube.grid, ("bands", "y", "x"), {"bands": tuple(names)})
    with tempfile.TemporaryDirectory(prefix="eotasks-openeo-") as folder:
        path = Path(folder) / "openEO.tif"
        flat.to_cog(path, dtype=np.float32, nodata=float("nan"), band_names=names)
        return path.read_bytes()


def _netcdf(cube: Raster) -> bytes:
    import pandas as pd
    import xarray as xr
    from pyproj import CRS

    t = cube.grid.transform
    x = t.c + (np.arange(cube.grid.width) + 0.5) * t.a
    y = t.f + (np.arange(cube.grid.height) + 0.5) * t.e
    coords: dict[str, Any] = {"x": ("x", x), "y": ("y", y)}
    dims = [d for d in cube.dims if d != "bands"]
    if "t" in cube.dims:
        coords["t"] = ("t", pd.to_datetime([str(v).replace("Z", "") for v in cube.labels["t"]]))
    for d in dims:
        if d not in ("x", "y", "t"):
            coords[d] = (d, list(cube.labels.get(d, range(cube.values.shape[cube.axis(d)]))))
    crs = CRS.from_user_input(cube.grid.crs)
    variables = {}
    bands = list(cube.labels.get("bands", ())) if "bands" in cube.dims else ["var"]
    for k, band in enumerate(bands):
        plane = np.take(cube.values, k, axis=cube.axis("bands")) if "bands" in cube.dims else cube.values
        variables[str(band)] = xr.Variable(dims, plane.astype(np.float32), {"grid_mapping": "crs"})
    ds = xr.Dataset(variables, coords=coords)
    ds["crs"] = xr.Variable((), np.int32(0), crs.to_cf())
    ds["x"].attrs.update({"standard_name": "projection_x_coordinate", "units": "m" if crs.is_projected else "degrees_east"})
    ds["y"].attrs.update({"standard_name": "projection_y_coordinate", "units": "m" if crs.is_projected else "degrees_north"})
    ds.attrs["Conventions"] = "CF-1.9"
    with tempfile.TemporaryDirectory(prefix="eotasks-openeo-") as folder:
        path = Path(folder) / "openEO.nc"
        ds.to_netcdf(path, engine="h5netcdf")
        return path.read_bytes()


def _png(cube: Raster) -> bytes:
    from PIL import Image

    planes, _ = planes_of(cube)
    if planes.shape[0] not in (1, 3, 4):
        raise OpenEOError(
            "FormatUnsuitable", f"PNG takes 1, 3 or 4 bands, not {planes.shape[0]}: reduce or filter the cube first", status=400
        )
    valid = ~np.isnan(planes).any(axis=0)
    pixels = np.clip(np.nan_to_num(planes, nan=0.0), 0, 255).astype(np.uint8)
    if planes.shape[0] == 1:
        image = np.stack([pixels[0], np.where(valid, 255, 0).astype(np.uint8)], axis=-1)
        mode = "LA"
    elif planes.shape[0] == 3:
        image = np.concatenate([np.moveaxis(pixels, 0, -1), np.where(valid, 255, 0).astype(np.uint8)[..., None]], axis=-1)
        mode = "RGBA"
    else:
        image, mode = np.moveaxis(pixels, 0, -1), "RGBA"
    buffer = io.BytesIO()
    Image.fromarray(image, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _number(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def vector_json(cube: VectorCube) -> Any:
    values = cube.values if "bands" in cube.dims else cube.values[..., None]  # one value: one "band"
    if "t" in cube.dims:
        moved = np.moveaxis(values, cube.dims.index("t"), 0).tolist()
        return {
            str(label): [[_number(v) for v in bands] for bands in geoms]
            for label, geoms in zip(cube.labels["t"], moved, strict=True)
        }
    return [[_number(v) for v in bands] for bands in values.tolist()]


def _csv(cube: VectorCube) -> bytes:
    bands = list(cube.labels.get("bands", ())) or ["value"]
    lines = ["date,feature_index," + ",".join(bands)] if "t" in cube.dims else ["feature_index," + ",".join(bands)]
    table = vector_json(cube)

    def cell(v: Any) -> str:
        return "" if v is None else repr(float(v))

    if isinstance(table, dict):
        for date, geoms in table.items():
            for i, vals in enumerate(geoms):
                lines.append(f"{date},{i}," + ",".join(cell(v) for v in vals))
    else:
        for i, vals in enumerate(table):
            lines.append(f"{i}," + ",".join(cell(v) for v in vals))
    return ("\n".join(lines) + "\n").encode()


def json_value(data: Any) -> Any:
    if isinstance(data, VectorCube):
        return vector_json(data)
    if isinstance(data, Raster):
        return {
            "dims": list(data.dims),
            "labels": {d: [to_python(v) for v in data.labels.get(d, ())] for d in data.dims if d in data.labels},
            "crs": data.grid.crs,
            "transform": list(data.grid.transform)[:6],
            "data": _nulls(data.values.tolist()),
        }
    return to_python(data)


def _nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return _number(value)


def json_bytes(data: Any) -> bytes:
    # NaN and infinities as JSON5-style literals (Python's json, and the openEO client, read them).
    return json.dumps(json_value(data), allow_nan=True).encode()
