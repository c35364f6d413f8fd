"""What a process graph's evaluation reaches outside numpy: ``load_collection`` through the
catalogue and the scenes' band files, and ``save_result`` into files for the result store.

``load_collection`` reads each scene of the extent (the catalogue's search, footprints and
``eo:cloud_cover`` filters) onto one grid: the native grid of the finest band asked for, in the CRS
of the earliest scene, cut to the pixels that meet the extent; each band is warped onto
it with nearest (GDAL, reading only the windows it needs), so a 20 m band is repeated on 10 m
pixels and a scene of another UTM zone is reprojected. Scenes of one day are mosaicked, the first
(by id) winning where both have data. The pixels x dates x bands are counted against the budget
before any read.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eotasks.openeo.collections import COLLECTIONS, S2_SCALE
from eotasks.openeo.cube import bbox_in, geometries_of, temporal_bounds
from eotasks.openeo.errors import OpenEOError
from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster


def label_of(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def extent_lonlat(spatial_extent: Any) -> tuple[float, float, float, float]:
    """The extent's bounds in lon/lat: a bounding box (any CRS) or GeoJSON."""
    if not isinstance(spatial_extent, dict):
        raise OpenEOError(
            "ProcessParameterInvalid",
            "The value passed for parameter 'spatial_extent' in process 'load_collection' is invalid: "
            "a bounding box or GeoJSON is required here (the whole world is too much for one request)",
        )
    if "west" in spatial_extent:
        return bbox_in(spatial_extent, "EPSG:4326")
    from shapely.geometry import shape
    from shapely.ops import unary_union

    return unary_union([shape(g) for g in geometries_of(spatial_extent)]).bounds


def lattice_grid(native: Grid, bounds: tuple[float, float, float, float]) -> Grid:
    """The pixels of ``native``'s lattice (unclipped: beyond its raster too) that meet ``bounds``
    (in its CRS): the cube covers the whole extent asked for, as the large back-ends' do."""
    from rasterio.transform import Affine

    t = native.transform
    minx, miny, maxx, maxy = bounds
    eps = 1e-9  # an edge on a pixel boundary does not take the pixel beyond it
    c0 = math.floor((minx - t.c) / t.a + eps)
    c1 = math.ceil((maxx - t.c) / t.a - eps) - 1
    r0 = math.floor((maxy - t.f) / t.e + eps)
    r1 = math.ceil((miny - t.f) / t.e - eps) - 1
    if c1 < c0 or r1 < r0:
        raise OpenEOError(
            "ProcessParameterInvalid",
            "The value passed for parameter 'spatial_extent' in process 'load_collection' is invalid: "
            "no pixel centre falls inside it",
        )
    origin = t * Affine.translation(c0, r0)
    return Grid(native.crs, origin, c1 - c0 + 1, r1 - r0 + 1)


@dataclass(frozen=True)
class LoadPlan:
    collection: str
    records: list[Any]
    bands: list[str]
    days: list[dt.date]
    grid: Grid


@dataclass
class CubeEnv:
    """The catalogue and the files of one evaluation. ``max_pixels`` bounds what one
    ``load_collection`` reads (pixels x dates x bands); ``window``, a part of its grid, is what a
    chunk of a batch job reads; ``keep_result`` keeps what ``save_result`` gets instead of encoding
    it (a chunk's part of the mosaic)."""

    max_pixels: int
    files: dict[str, bytes | Path] = field(default_factory=dict)
    window: Grid | None = None
    keep_result: bool = False
    kept: list[tuple[Any, str, dict[str, Any]]] = field(default_factory=list)

    # --- load_collection --------------------------------------------------------------------------

    def scenes(self, collection_id: str, spatial_extent: Any, temporal_extent: Any, properties: Any) -> list[Any]:
        from shapely.geometry import box, shape

        from eotasks.catalog.search import search_scenes

        collection = COLLECTIONS[collection_id]
        start, end = temporal_bounds(list(temporal_extent)) if temporal_extent is not None else (None, None)
        first = start.date() if start is not None else None
        # [start, end): the last day is the day before ``end`` unless ``end`` is later in that day.
        last = None
        if end is not None:
            last = end.date() if end.time() != dt.time(0) else end.date() - dt.timedelta(days=1)
        aoi = box(*extent_lonlat(spatial_extent))
        found, _ = search_scenes([collection.sensor], [(first, last)], aoi=aoi, newest_first=False)
        found = [s for s in found if shape(s.footprint).intersects(aoi)]
        for name, condition in (properties or {}).items():
            if name != "eo:cloud_cover":
                raise OpenEOError(
                    "ProcessParameterInvalid",
                    f"The value passed for parameter 'properties' in process 'load_collection' is invalid: "
                    f"only eo:cloud_cover can be filtered here, not {name}",
                )
            found = [s for s in found if condition(value=s.cloud_cover) is True]
        return sorted(found, key=lambda s: (s.date, s.view_id))

    def plan_load(self, collection_id: str, spatial_extent: Any, temporal_extent: Any, bands: Any, properties: Any) -> LoadPlan:
        """What ``load_collection`` reads: the scenes, bands, dates and the one grid (before any read)."""
        from rasterio.warp import transform_bounds

        from eotasks.catalog.scenes import scene_assets
        from eotasks.raster.read import BandFiles

        collection = COLLECTIONS[collection_id]
        names = list(bands) if bands else collection.bands
        records = self.scenes(collection_id, spatial_extent, temporal_extent, properties)
        if not records:
            raise OpenEOError(
                "NoDataAvailable", f"There is no data available for the given extents in collection {collection_id}.", status=400
            )
        assets = scene_assets(records[0])
        finest = min(names, key=lambda b: assets[b].resolution)
        with BandFiles(assets) as files:
            native = files.native_grid(finest)
        bounds = transform_bounds("EPSG:4326", native.crs, *extent_lonlat(spatial_extent), densify_pts=21)
        days = sorted({r.date for r in records})
        return LoadPlan(collection_id, records, names, days, lattice_grid(native, bounds))

    def load_collection(
        self, collection_id: str, spatial_extent: Any, temporal_extent: Any, bands: Any, properties: Any
    ) -> Raster:
        plan = self.plan_load(collection_id, spatial_extent, temporal_extent, bands, properties)
        # A chunk of a batch job reads its window of the grid (eotasks.openeo.chunks), else all of it.
        grid = self.window if self.window is not None else plan.grid
        total = grid.pixels * len(plan.days) * len(plan.bands)
        if total > self.max_pixels:
            raise OpenEOError(
                "ProcessGraphComplexity",
                f"load_collection would read {total:,} values ({grid.width} x {grid.height} pixels x {len(plan.days)} dates x "
                f"{len(plan.bands)} bands), more than the {self.max_pixels:,} allowed here: use a smaller extent, fewer dates or "
                "bands, or a batch job",
            )
        collection = COLLECTIONS[collection_id]
        values = np.full((len(plan.days), len(plan.bands), *grid.shape), np.nan)
        for record in plan.records:
            self._read_scene(record, plan.bands, grid, values[plan.days.index(record.date)], collection.as_reflectance_x10000())
        return Raster(
            values,
            grid,
            ("t", "bands", "y", "x"),
            {"t": tuple(label_of(d) for d in plan.days), "bands": tuple(plan.bands)},
            {"common_names": collection.common_names(), "collection": collection_id},
        )

    def _read_scene(self, record: Any, names: list[str], grid: Grid, into: np.ndarray, x10000: bool) -> None:
        """One scene's bands onto ``grid``, where ``into`` (bands, y, x) has no data yet."""
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.warp import reproject

        from eotasks.catalog.scenes import scene_assets
        from eotasks.raster.read import BandFiles

        assets = scene_assets(record)
        with BandFiles(assets) as files:
            for k, name in enumerate(names):
                asset = assets[name]
                src = files.dataset(name)
                nodata = asset.nodata if asset.nodata is not None else src.nodata
                plane = np.full(grid.shape, np.nan)
                reproject(
                    rasterio.band(src, 1),
                    plane,
                    src_nodata=nodata,
                    dst_transform=grid.transform,
                    dst_crs=grid.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.nearest,
                )
                if asset.spectral and x10000:
                    # reflectance x 10,000 from the stored numbers: DN x (scale x 1e4) + offset x 1e4.
                    plane = plane * (asset.scale * S2_SCALE) + asset.offset * S2_SCALE
                empty = np.isnan(into[k])
                into[k][empty] = plane[empty]

    # --- save_result ------------------------------------------------------------------------------

    def save_result(self, data: Any, format: str, options: dict[str, Any]) -> None:
        from eotasks.openeo.formats import encode

        if self.keep_result:
            self.kept.append((data, format, options))
            return
        name, content = encode(data, format, options)
        if name in self.files:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem}_{len(self.files)}{dot}{ext}"
        self.files[name] = content


def estimate_values(graph: dict[str, Any], limit: int, sync: bool) -> int:
    """Values (pixels x dates x bands) the graph's ``load_collection`` nodes will read, from the
    catalogue alone (before any run); over ``limit`` is a 400 (for a synchronous request, saying to
    use a batch job). Extents given by a parameter are checked when the run loads them."""
    from shapely.geometry import box

    from eotasks.raster.aoi import geodesic_area_km2

    total = 0
    env = CubeEnv(max_pixels=limit)
    for node in graph.values():
        if node.get("process_id") != "load_collection":
            continue
        args = node.get("arguments", {})
        collection = COLLECTIONS.get(args.get("id", ""))
        extent = args.get("spatial_extent")
        if collection is None or not isinstance(extent, dict) or "from_parameter" in extent or "from_node" in extent:
            continue
        temporal = args.get("temporal_extent")
        if isinstance(temporal, dict):
            continue
        bands = args.get("bands") if isinstance(args.get("bands"), list) else collection.bands
        finest = min(collection.spec.band(b).resolution for b in bands if b in collection.bands) if bands else 10.0
        pixels = geodesic_area_km2(box(*extent_lonlat(extent))) * 1e6 / (finest * finest)
        days = len({s.date for s in env.scenes(collection.id, extent, temporal, None)})
        total += int(pixels * days * len(bands))
    if total > limit:
        advice = "; use a batch job (POST /jobs)" if sync else "; use a smaller extent, fewer dates or bands"
        raise OpenEOError(
            "ProcessGraphComplexity",
            f"The process graph would read about {total:,} values (pixels x dates x bands), more than the {limit:,} "
            f"allowed for a {'synchronous request' if sync else 'batch job'}{advice}",
        )
    return total
