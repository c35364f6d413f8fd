"""Request and response models: declared once, used for validation, OpenAPI and flow parameters.

Every rule of SPEC §2-3 that can be checked without reading a raster lives here, so a bad request
is a 400 naming its field before any flow run exists.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, ClassVar, Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from shapely.geometry import shape

from eotasks.catalog.ids import parse_view_id
from eotasks.errors import ExpressionError
from eotasks.geojson import GeoJSONError, check_densified, densified_vertices, plain_geometry
from eotasks.raster.aoi import aoi_from_bbox, geodesic_area_km2
from eotasks.raster.expression import parse, split_expressions
from eotasks.raster.indices import compile_expressions, require_a_band
from eotasks.sensors import OPTICAL_SENSORS, normalize_sensor_name, sensor_by_name
from eotasks.settings import get_settings

TASK_TYPES = ("lbe", "jpeg", "bandmath", "mt_stats")
GDAL_RESAMPLING = (
    "nearest",
    "bilinear",
    "cubic",
    "cubic_spline",
    "lanczos",
    "average",
    "mode",
    "min",
    "max",
    "med",
    "q1",
    "q3",
    "rms",
    "sum",
)


def _err(error_type: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(error_type, message, ctx or None)


def _check_view_id(value: str) -> str:
    try:
        return parse_view_id(value).view_id
    except ValueError as exc:
        raise _err("view_id", "{reason}", reason=str(exc)) from None


def _check_expressions(
    value: str, view_id: str | None, max_count: int | None = None, counts: tuple[int, ...] | None = None
) -> str:
    """The grammar always (it needs no sensor); names against the sensor when the view_id is valid;
    with ``counts``, how many comma-separated expressions are allowed."""
    settings = get_settings()
    if not value.strip():
        raise _err("expression", "must name at least one band, alias or expression")
    try:
        asts = parse(value, settings.max_expression_chars)
        for source, ast in zip(split_expressions(value), asts, strict=False):
            require_a_band(source, ast)  # also when the view_id is bad: "1" is wrong on any scene
        count = len(asts)
        if view_id is not None:
            compile_expressions(
                value, parse_view_id(view_id).sensor, settings.max_expression_chars, max_count or settings.max_expressions
            )
    except ExpressionError as exc:
        raise _err("expression", "{reason}", reason=exc.message) from None
    if counts is not None and count not in counts:
        want = " or ".join(map(str, counts))
        raise _err("expression", "needs {want} expression(s), got {count}", want=want, count=count)
    return value


def checked_geometry(value: Any) -> dict[str, Any]:
    """A Polygon or MultiPolygon rebuilt from the client's JSON (no member of theirs survives), with
    at most ``max_aoi_vertices`` vertices before and ``max_densified_vertices`` once densified for
    reprojection, valid and with an area; a PydanticCustomError naming the problem otherwise."""
    settings = get_settings()
    try:
        plain = plain_geometry(value, settings.max_aoi_vertices)
        check_densified(plain, settings.max_densified_vertices)
    except GeoJSONError as exc:
        raise _err("geometry", "{reason}", reason=str(exc)) from None
    try:
        geom = shape(plain)
    except Exception as exc:  # shapely raises many types on malformed coordinates
        raise _err("geometry", "has malformed coordinates: {reason}", reason=str(exc)[:200]) from None
    if geom.is_empty:
        raise _err("geometry", "is empty")
    minx, miny, maxx, maxy = geom.bounds
    if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
        raise _err("geometry", "has coordinates outside longitude -180..180 / latitude -90..90")
    if not geom.is_valid:
        raise _err("geometry", "is not a valid polygon: {reason}", reason=shapely.is_valid_reason(geom))
    if geom.area == 0:
        raise _err("geometry", "has no area")
    return plain


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reference: str | None = Field(None, max_length=256, description="Free text, stored and echoed.")


class AOIParams(_Params):
    """Exactly one of bbox, geometry, cropper_ref (or none where the task type allows it)."""

    bbox: list[float] | None = Field(
        None, description="[minx, miny, maxx, maxy] in EPSG:4326.", examples=[[-75.65, 37.64, -75.6, 37.7]]
    )
    geometry: dict[str, Any] | None = Field(None, description="A GeoJSON Polygon or MultiPolygon in EPSG:4326.")
    cropper_ref: str | None = Field(None, description="Id of a geometry saved with POST /api/render/cropper/.")

    _aoi_required: bool = False

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) != 4:
            raise _err("bbox", "must be four numbers [minx, miny, maxx, maxy]")
        minx, miny, maxx, maxy = v
        if not all(x == x and abs(x) != float("inf") for x in v):
            raise _err("bbox", "must be finite numbers")
        if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
            raise _err("bbox", "is outside the valid range (longitude -180..180, latitude -90..90)")
        if not (minx < maxx and miny < maxy):
            raise _err("bbox", "needs minx < maxx and miny < maxy")
        return v

    @field_validator("geometry", mode="before")
    @classmethod
    def _geometry(cls, v: Any) -> dict[str, Any] | None:
        """The geometry rebuilt as plain GeoJSON of our own (see eotasks.geojson), valid and bounded."""
        return None if v is None else checked_geometry(v)

    @field_validator("cropper_ref")
    @classmethod
    def _cropper(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{32}", v):
            raise _err("cropper_ref", "must be 32 lowercase hex digits")
        return v

    @model_validator(mode="after")
    def _one_aoi(self) -> AOIParams:
        given = [n for n in ("bbox", "geometry", "cropper_ref", "fields") if getattr(self, n, None) is not None]
        if len(given) > 1:
            raise _err(
                "aoi", "give exactly one of bbox, geometry, cropper_ref (got {given})", given=", ".join(given), field=given[1]
            )
        if not given and self._aoi_required:
            raise _err("aoi", "an area of interest is required: give bbox, geometry or cropper_ref", field="geometry")
        shp = self.aoi_shape() if getattr(self, "fields", None) is None else None  # fields: each is checked on its own
        if shp is not None:
            limit = get_settings().max_aoi_km2
            area = geodesic_area_km2(shp)
            if area > limit:
                raise _err(
                    "aoi",
                    "the AOI covers {area} km², more than the limit of {limit} km²",
                    area=round(area, 1),
                    limit=limit,
                    field=given[0],
                )
        return self

    def aoi_shape(self) -> shapely.Geometry | None:
        """The AOI in lon/lat (a cropper_ref is resolved by the crop step)."""
        if self.bbox is not None:
            return aoi_from_bbox(self.bbox)
        if self.geometry is not None:
            return shape(self.geometry)
        return None

    @property
    def mask_outside(self) -> bool:
        """Pixels outside a polygon AOI are nodata; a bbox only crops."""
        return self.bbox is None


class SceneParams(AOIParams):
    """Parameters of the task types that work on one scene."""

    view_id: str = Field(..., description="The scene, e.g. S2/18/S/VG/2020/6/15/0.", examples=["S2/18/S/VG/2020/6/15/0"])

    @field_validator("view_id")
    @classmethod
    def _view(cls, v: str) -> str:
        return _check_view_id(v)


# SPEC §5's names: GDAL's (cubicspline) beside rasterio's (cubic_spline), without the two that are
# not resamplings of a value (rms, sum).
OUTPUT_RESAMPLING = tuple(
    m for n in GDAL_RESAMPLING if n not in ("rms", "sum") for m in (("cubicspline", n) if n == "cubic_spline" else (n,))
)
MAX_GRID_SIDE = 10_000


class OutputGrid(BaseModel):
    """SPEC §5: the grid of the output. None of these given: the scene's own grid, as before."""

    crs: str | int | None = Field(None, description="The output's CRS, 'EPSG:<code>' or the code; default the scene's.")
    resolution: float | list[float] | None = Field(
        None, description="Pixel size in units of crs, a number or [x, y]; pixel edges on its multiples."
    )
    width: int | None = Field(None, ge=1, le=MAX_GRID_SIDE, description="Pixels across the AOI's bounds in crs.")
    height: int | None = Field(None, ge=1, le=MAX_GRID_SIDE, description="Pixels down the AOI's bounds in crs.")
    resample: Literal[OUTPUT_RESAMPLING] = Field("nearest", description="GDAL's resampling onto the output grid.")  # type: ignore[valid-type]

    @field_validator("crs", mode="before")
    @classmethod
    def _crs(cls, v: Any) -> str | None:
        if v is None:
            return None
        code = v if isinstance(v, int) and not isinstance(v, bool) else None
        if isinstance(v, str) and re.fullmatch(r"(?i)epsg:\d{1,6}", v.strip()):
            code = int(v.strip().split(":")[1])
        if code is None:
            raise _err("crs", "must be 'EPSG:<code>' or an EPSG code, e.g. 'EPSG:4326' or 32633")
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_epsg(code)
        except CRSError:
            raise _err("crs", "EPSG:{code} is not a CRS that PROJ knows", code=code) from None
        return f"EPSG:{code}"

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v: float | list[float] | None) -> float | list[float] | None:
        values = [v] if isinstance(v, (int, float)) else v
        if values is not None and not (len(values) in (1, 2) and all(math.isfinite(x) and x > 0 for x in values)):
            raise _err("resolution", "must be a number or [x, y] of numbers > 0")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> OutputGrid:
        if self.resolution is not None and (self.width is not None or self.height is not None):
            raise _err("resolution", "give resolution or width/height, not both", field="resolution")
        return self

    @property
    def output_crs(self) -> str | None:
        """``crs`` as the validator normalised it: 'EPSG:<code>'."""
        return None if self.crs is None else str(self.crs)

    @property
    def output_requested(self) -> bool:
        return any(v is not None for v in (self.crs, self.resolution, self.width, self.height))

    # The output's CRS when the request names none (None: the scene's own).
    default_output_crs: ClassVar[str | None] = None

    @property
    def resolution_xy(self) -> tuple[float, float] | None:
        if self.resolution is None:
            return None
        if isinstance(self.resolution, (int, float)):
            return float(self.resolution), float(self.resolution)
        x, *rest = self.resolution
        return float(x), float(rest[0] if rest else x)


class GriddedSceneParams(SceneParams, OutputGrid):
    """A task on one scene whose output may have a grid of its own (SPEC §5)."""


class BandmathParams(GriddedSceneParams):
    bm_type: str = Field(
        ...,
        description="One or more comma-separated expressions or aliases, e.g. 'NDVI' or '(B08-B04)/(B08+B04), NDWI'.",
        examples=["NDVI"],
    )
    name_alias: str | None = Field(None, max_length=128, description="Output file name instead of bm_type.")

    @field_validator("bm_type")
    @classmethod
    def _bm(cls, v: str, info: ValidationInfo) -> str:
        return _check_expressions(v, info.data.get("view_id"))


class LbeParams(GriddedSceneParams):
    _aoi_required = True
    bands: list[str] = Field(..., description="Band names in output order.", examples=[["B04", "B03", "B02"]])
    merge: bool = Field(True, description="Bands of one resolution in one GeoTIFF; false: one file per band.")
    metadata: list[str] | None = Field(None, description="Metadata files of the scene to include (the answer is a zip).")

    @field_validator("bands")
    @classmethod
    def _bands(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if not v:
            raise _err("bands", "must name at least one band")
        view_id = info.data.get("view_id")
        if view_id is None:
            return v
        sensor = parse_view_id(view_id).sensor
        resolved = []
        for name in v:
            band = sensor.resolve_band(name)
            if band is None:
                raise _err("bands", "unknown band {name} for {sensor}", name=repr(name), sensor=sensor.name)
            if band in resolved:
                raise _err("bands", "band {name} is listed twice", name=repr(name))
            resolved.append(band)
        return resolved


class JpegParams(GriddedSceneParams):
    bm_type: str = Field(..., description="One expression (grey or colormapped) or three (RGB), e.g. 'B04,B03,B02'.")
    format: Literal["jpeg", "png", "tiff"] = Field("jpeg", description="The picture's encoding.")
    px_size: float | None = Field(None, gt=0, description="Output pixel size in metres of EPSG:3857.")
    resample: Literal[(*GDAL_RESAMPLING, "cubicspline")] = Field(  # type: ignore[valid-type]
        "cubic", description="GDAL's resampling onto the picture's grid."
    )
    colormap: str | None = Field(None, description="A Matplotlib colormap for one expression, e.g. RdYlGn.")
    levels: str | None = Field(None, description="'min,max' mapped onto the colormap (default -0.5,0.5).")
    colors_limit: int | None = Field(None, ge=2, le=256, description="Quantise the colormap to this many colours.")
    name_alias: str | None = Field(None, max_length=128, description="Output file name instead of bm_type.")
    calibrate: bool | None = Field(None, description="Accepted; values are always reflectance.")

    default_output_crs: ClassVar[str | None] = "EPSG:3857"

    @model_validator(mode="after")
    def _px_size_or_resolution(self) -> JpegParams:
        if self.px_size is not None and (self.resolution is not None or self.width is not None or self.height is not None):
            raise _err(
                "px_size",
                "px_size is resolution in EPSG:3857 metres: give one of px_size, resolution, width/height",
                field="px_size",
            )
        return self

    @field_validator("bm_type")
    @classmethod
    def _bm(cls, v: str, info: ValidationInfo) -> str:
        # One expression (grey or colormapped) or three (RGB).
        return _check_expressions(v, info.data.get("view_id"), counts=(1, 3))

    @field_validator("colormap")
    @classmethod
    def _colormap(cls, v: str | None) -> str | None:
        from eotasks.raster.render import colormap_names

        if v is not None and v not in colormap_names():
            raise _err("colormap", "unknown Matplotlib colormap {name} (e.g. viridis, RdYlGn, RdYlGn_r)", name=repr(v))
        return v

    @model_validator(mode="after")
    def _output_size(self) -> JpegParams:
        from eotasks.raster.warp import aoi_pixels

        shp = self.aoi_shape()
        if self.px_size is not None and shp is not None:
            limit = get_settings().max_output_pixels
            n = aoi_pixels(shp, self.px_size)
            if n > limit:
                raise _err(
                    "px_size",
                    "px_size {px} m gives a picture of {n} pixels for this AOI, more than the limit of {limit}",
                    px=self.px_size,
                    n=n,
                    limit=limit,
                    field="px_size",
                )
        return self

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            lo, hi = (float(x) for x in v.split(","))
        except ValueError:
            raise _err("levels", "must be two numbers 'min,max'") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise _err("levels", "must be finite numbers (no inf or nan)")
        if not lo < hi:
            raise _err("levels", "needs min < max")
        return v


class HistogramSpec(BaseModel):
    """``{"bins": N, "range": [lo, hi]}`` or ``{"edges": [e0, ..., en]}`` (increasing)."""

    model_config = ConfigDict(extra="forbid")
    bins: int | None = Field(None, ge=1, le=1000)
    range: list[float] | None = None
    edges: list[float] | None = Field(None, min_length=2, max_length=1001)

    @model_validator(mode="after")
    def _one_form(self) -> HistogramSpec:
        if self.edges is not None:
            if self.bins is not None or self.range is not None:
                raise _err("histogram", "give either bins and range, or edges", field="histogram")
            if not all(math.isfinite(e) for e in self.edges) or any(
                b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)
            ):
                raise _err("histogram", "edges must be finite and increasing", field="histogram.edges")
            return self
        if self.bins is None or self.range is None or len(self.range) != 2:
            raise _err("histogram", "needs bins and range [lo, hi], or edges", field="histogram")
        lo, hi = self.range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise _err("histogram", "range must be two finite numbers lo < hi", field="histogram.range")
        return self

    def bin_edges(self) -> list[float]:
        if self.edges is not None:
            return list(self.edges)
        if self.range is None or self.bins is None:  # the validator above makes this impossible
            raise ValueError("a histogram needs bins and range, or edges")
        lo, hi = self.range
        return [lo + (hi - lo) * i / self.bins for i in range(self.bins + 1)]


def field_id(feature: dict[str, Any]) -> Any:
    """A feature's id as sent: its top-level ``id``, else ``properties.id``."""
    fid = feature.get("id")
    if fid is None:
        fid = (feature.get("properties") or {}).get("id")
    return fid


class Aggregation(BaseModel):
    """SPEC §6: per-interval composites instead of per-scene items."""

    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="An ISO-8601 duration (P10D, P2W, P1M, P1Y) or day, week, dekad, month, season, year.")
    composite: Literal["mean", "median", "min", "max", "first", "last"] = Field(
        "mean", description="The per-pixel reducer over the interval's clear observations."
    )
    last_interval: Literal["skip", "shorten", "extend"] = Field(
        "skip", description="ISO durations: an interval that would end after date_end is left out, cut, or kept whole."
    )

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        from eotasks.intervals import PeriodError, parse_period

        try:
            parse_period(v)
        except PeriodError as exc:
            raise _err("aggregation", "{reason}", reason=str(exc), field="aggregation.period") from None
        return v

    @model_validator(mode="after")
    def _calendar_has_no_last(self) -> Aggregation:
        from eotasks.intervals import CALENDAR

        if self.period in CALENDAR and self.last_interval != "skip":
            raise _err(
                "aggregation",
                "last_interval applies to ISO durations, not to calendar periods",
                field="aggregation.last_interval",
            )
        return self


class MtStatsParams(AOIParams, OutputGrid):
    _aoi_required = True
    date_start: dt.date = Field(description="First day, YYYY-MM-DD (inclusive).")
    date_end: dt.date = Field(description="Last day, YYYY-MM-DD (inclusive); the span is at most a configured limit.")
    bm_type: str | list[str] = Field(
        description="An expression or alias (statistics flat in each item), or a list of them (under `indexes`)."
    )
    sensors: list[str] | None = Field(
        None, description="Long or short names (sentinel2l2a / S2L2A, landsat8 / L8 ...); default: every optical sensor."
    )
    limit: int = Field(100, gt=0, le=10_000, description="At most this many scenes, the most recent first.")
    max_cloud_cover_in_aoi: float = Field(100, ge=0, le=100, description="Scenes cloudier than this in the AOI go to errors.")
    exclude_cover_pixels: bool = Field(True, description="Leave the cloud mask's flagged pixels out of the statistics.")
    cloud_masking_level: int = Field(1, ge=1, le=4, description="1 high-confidence cloud ... 4 cloud, cirrus (SPEC).")
    # "Fields and richer statistics" (SPEC): none of these changes an answer unless given.
    fields: dict[str, Any] | None = Field(
        None, description="A GeoJSON FeatureCollection of Polygon/MultiPolygon features, each with a unique id."
    )
    coverage: Literal["centre", "exact"] = Field(
        "centre",
        description="centre: a pixel counts when its centre is inside; exact: weighted by the fraction of its area inside.",
    )
    percentiles: Annotated[list[float], Field(max_length=20)] | None = Field(
        None, description="Extra percentiles (0-100) in each item, e.g. [5, 95]."
    )
    histogram: HistogramSpec | None = Field(None, description="Bins of each index's values in each item.")
    output_format: Literal["json", "csv"] = Field("json", description="With fields: the answer file's format.")
    aggregation: Aggregation | None = Field(None, description="Per-interval composites (SPEC §6) instead of per-scene items.")

    @field_validator("percentiles")
    @classmethod
    def _percentiles(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not all(math.isfinite(p) and 0 <= p <= 100 for p in v):
            raise _err("percentiles", "must be numbers in [0, 100]")
        return v

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, v: Any) -> dict[str, Any] | None:
        """The FeatureCollection rebuilt: each feature's id as sent and its checked geometry, nothing
        else of the client's (properties are not needed and are not passed on)."""
        if v is None:
            return v
        if (
            not isinstance(v, dict)
            or v.get("type") != "FeatureCollection"
            or not isinstance(v.get("features"), list)
            or not v["features"]
        ):
            raise _err("fields", "must be a GeoJSON FeatureCollection with at least one feature")
        settings = get_settings()
        if len(v["features"]) > settings.max_fields:
            raise _err(
                "fields", "has {n} features, more than the limit of {limit}", n=len(v["features"]), limit=settings.max_fields
            )
        seen: set[Any] = set()
        features = []
        densified = 0
        for i, feature in enumerate(v["features"]):
            where = f"fields[{i}]"
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise _err("fields", "{where} is not a GeoJSON Feature", where=where, field=where)
            fid = field_id(feature)
            if fid is None or isinstance(fid, bool) or not isinstance(fid, (str, int, float)):
                raise _err(
                    "fields",
                    "{where} needs an id (the feature's id or properties.id, a string or a number)",
                    where=where,
                    field=where,
                )
            if fid in seen:
                raise _err("fields", "{where} repeats the id {fid}", where=where, fid=repr(fid), field=where)
            seen.add(fid)
            try:
                geometry = checked_geometry(feature.get("geometry"))
            except PydanticCustomError as exc:
                raise _err("fields", "{where}: {reason}", where=where, reason=str(exc), field=where) from None
            densified += densified_vertices(geometry)
            if densified > settings.max_fields_densified_vertices:
                raise _err(
                    "fields",
                    "the fields would have more than {limit} vertices in all once densified for reprojection; send "
                    "fewer or simpler fields",
                    limit=f"{settings.max_fields_densified_vertices:,}",
                    field=where,
                )
            area = geodesic_area_km2(shape(geometry))
            if area > settings.max_aoi_km2:
                raise _err(
                    "fields",
                    "{where} covers {area} km², more than the limit of {limit} km²",
                    where=where,
                    area=round(area, 1),
                    limit=settings.max_aoi_km2,
                    field=where,
                )
            features.append({"type": "Feature", "id": fid, "geometry": geometry})
        return {"type": "FeatureCollection", "features": features}

    def field_shapes(self) -> list[tuple[Any, shapely.Geometry]]:
        """(id as sent, lon/lat shape) of every field, in the order sent."""
        return [(field_id(f), shape(f["geometry"])) for f in (self.fields or {}).get("features", [])]

    def aoi_shape(self) -> shapely.Geometry | None:
        if self.fields is not None:
            return shapely.GeometryCollection([g for _, g in self.field_shapes()])
        return super().aoi_shape()

    @property
    def richer(self) -> bool:
        """Any of SPEC's "Fields and richer statistics" parameters in use (they add count, nodata_count)."""
        return self.fields is not None or self.coverage != "centre" or bool(self.percentiles) or self.histogram is not None

    @field_validator("sensors", mode="before")
    @classmethod
    def _sensors(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v:
            raise _err("sensors", "must be a non-empty list of sensor names")
        out = []
        for name in v:
            long = normalize_sensor_name(name) if isinstance(name, str) else None
            if long is None:
                raise _err("sensors", "unknown sensor {name}; known: {known}", name=repr(name), known=", ".join(OPTICAL_SENSORS))
            out.append(long)
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _dates_and_expressions(self) -> MtStatsParams:
        settings = get_settings()
        if self.date_end < self.date_start:
            raise _err(
                "date",
                "date_end {end} is before date_start {start}",
                end=str(self.date_end),
                start=str(self.date_start),
                field="date_end",
            )
        span = (self.date_end - self.date_start).days
        if span > settings.mt_stats_max_days:
            raise _err(
                "date",
                "the date range spans {span} days, more than the limit of {limit}",
                span=span,
                limit=settings.mt_stats_max_days,
                field="date_end",
            )
        items = [self.bm_type] if isinstance(self.bm_type, str) else self.bm_type
        if not items:
            raise _err("expression", "bm_type must name at least one index", field="bm_type")
        if len(items) > settings.mt_stats_max_bm_types:
            raise _err(
                "expression",
                "at most {limit} bm_type items are allowed, got {n}",
                limit=settings.mt_stats_max_bm_types,
                n=len(items),
                field="bm_type",
            )
        explicit = self.sensors is not None
        sensors = [s for s in (sensor_by_name(n) for n in self.sensors or OPTICAL_SENSORS) if s is not None]
        for item in items:
            # Named sensors: the item must work on each. No sensors: on at least one (a band that only
            # Landsat has is fine; "((" or "FOO" works nowhere and is a 400 naming the token).
            failures = []
            for sensor in sensors:
                try:
                    compile_expressions(item, sensor, settings.max_expression_chars, 1)
                except ExpressionError as exc:
                    failures.append(exc)
            if failures and (explicit or len(failures) == len(sensors)):
                raise _err(
                    "expression", "{item}: {reason}", item=repr(item), reason=failures[0].message, field="bm_type"
                ) from None
        return self


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    callback_url: str | None = Field(None, max_length=2048, description="POSTed the task's final answer when it ends.")


class BandmathRequest(_Request):
    type: Literal["bandmath"]
    params: BandmathParams


class LbeRequest(_Request):
    type: Literal["lbe"]
    params: LbeParams


class JpegRequest(_Request):
    type: Literal["jpeg"]
    params: JpegParams


class MtStatsRequest(_Request):
    type: Literal["mt_stats"]
    params: MtStatsParams


TaskRequestModel = BandmathRequest | LbeRequest | JpegRequest | MtStatsRequest
TaskRequest = Annotated[TaskRequestModel, Field(discriminator="type")]


class OpenEOParams(BaseModel):
    """The ``openeo`` flow's parameters (SPEC §8): a process graph that ``eotasks.openeo.graph``
    validated and rebuilt before it got here; not a task type of the Tasks API."""

    model_config = ConfigDict(extra="forbid")
    process_graph: dict[str, Any]
    job_id: str | None = Field(None, description="The batch job's id; none for a synchronous request.")
    reference: str | None = None


class OpenEORequest(BaseModel):
    """What the openEO routes submit through the one submission path of the tasks."""

    type: Literal["openeo"] = "openeo"
    params: OpenEOParams
    callback_url: str | None = None


# --- responses ------------------------------------------------------------------------------------


class TaskAccepted(BaseModel):
    status: str = "authentication"
    task_id: str
    req_id: str
    task_timeout: int


class TaskPending(BaseModel):
    task_type: Literal["created", "started"]
    status: Literal["created", "started"]
    stage: str
    reference: str | None
    token: str
    result_url: str = ""
    client_id: int = 0
    download_id: int = 0
    task_id: str


class TaskFinished(BaseModel):
    task_type: Literal["finished"] = "finished"
    status: Literal["finished"] = "finished"
    task_id: str
    result_url: str
    files: list[str]


class TaskFailed(BaseModel):
    task_type: Literal["failed", "cancelled"]
    status: Literal["failed", "cancelled"]
    stage: str
    error: str
    task_id: str


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    status: bool = False
    error: str
    details: list[ErrorDetail] = []


# --- scene search (SPEC §4) -------------------------------------------------------------------------


class DateRangeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None


class NumberRange(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: float | None = Field(None, alias="from", ge=0, le=100)
    to: float | None = Field(None, ge=0, le=100)


MAX_SEARCH_DATES = 100  # date ranges in one search; more is a 400, not a query too deep for the database


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: DateRangeModel | Annotated[list[DateRangeModel | dt.date], Field(max_length=MAX_SEARCH_DATES)] | dt.date | None = None
    cloudCoverage: NumberRange | None = None
    shape: dict[str, Any] | None = None
    satellites: Annotated[list[str], Field(max_length=50)] | None = None

    @field_validator("shape", mode="before")
    @classmethod
    def _shape(cls, v: Any) -> dict[str, Any] | None:
        return None if v is None else checked_geometry(v)

    @field_validator("satellites")
    @classmethod
    def _satellites(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else MtStatsParams._sensors(v)

    def date_ranges(self) -> list[tuple[dt.date | None, dt.date | None]] | None:
        if self.date is None:
            return None
        values = self.date if isinstance(self.date, list) else [self.date]
        return [(d.from_, d.to) if isinstance(d, DateRangeModel) else (d, d) for d in values]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    search: SearchFilters = Field(default_factory=SearchFilters)
    sort: dict[str, Literal["asc", "desc"]] = Field(default_factory=lambda: dict[str, Literal["asc", "desc"]](date="desc"))
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(500, ge=1, le=5000)
    fields: Annotated[list[str], Field(max_length=50)] | None = None

    @field_validator("sort")
    @classmethod
    def _sort(cls, v: dict[str, str]) -> dict[str, str]:
        if set(v) - {"date"}:
            raise _err("sort", "only sorting by date is supported")
        return v


def task_examples() -> dict[str, dict[str, Any]]:
    """One request per task type for the API documentation, on the demo scenes that ``make up``
    ingests (the tests check that each validates and runs)."""
    from eotasks.sample import SAMPLE_POLYGON

    field = SAMPLE_POLYGON

    demo = {
        "type": "Polygon",
        "coordinates": [
            [[-75.4285, 37.8189], [-75.4285, 37.8223], [-75.4544, 37.8222], [-75.4544, 37.8188], [-75.4285, 37.8189]]
        ],
    }
    view = "S2/18/S/VG/2020/6/15/0"
    return {
        "bandmath": {
            "summary": "NDVI over a polygon (Float32 GeoTIFF)",
            "value": {"type": "bandmath", "params": {"view_id": view, "bm_type": "NDVI", "geometry": field}},
        },
        "lbe": {
            "summary": "Red, green, blue as stored (one GeoTIFF)",
            "value": {"type": "lbe", "params": {"view_id": view, "bands": ["B04", "B03", "B02"], "geometry": field}},
        },
        "jpeg": {
            "summary": "NDVI coloured with RdYlGn (PNG)",
            "value": {
                "type": "jpeg",
                "params": {
                    "view_id": view,
                    "bm_type": "NDVI",
                    "geometry": field,
                    "format": "png",
                    "colormap": "RdYlGn",
                    "levels": "-0.2,0.8",
                },
            },
        },
        "mt_stats": {
            "summary": "NDVI statistics of a field through a year of demo scenes",
            "value": {
                "type": "mt_stats",
                "params": {
                    "date_start": "2023-01-01",
                    "date_end": "2023-12-31",
                    "bm_type": "NDVI",
                    "sensors": ["S2L2A", "L8"],
                    "geometry": demo,
                },
            },
        },
    }
