"""Batch jobs over large extents, in spatial chunks with bounded memory.

A graph can run chunk by chunk when every pixel of its answer depends only on the same pixel of
its input: one ``load_collection``, then processes that keep the grid and work per pixel (band and
time maths, reducers over ``t`` or ``bands``, masks, temporal aggregation), ending in
``save_result`` as GTiff. Its grid is then cut into windows of at most ``CHUNK_PIXELS``; each
window is the whole graph evaluated on that window (a step of its own in the flow, on the flow's
task runner: threads, or Dask when configured); the windows' answers are written into one file.
Memory follows a window (x dates x bands), never the whole extent. Plain functions: no Prefect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster

CHUNK_PIXELS = 1024 * 1024
CHUNK_VALUES = 1 << 24  # pixels x dates x bands one chunk reads: a chunk's memory, whatever the extent
# Processes whose every output pixel depends only on the same pixel of their input cube.
PER_PIXEL = {
    "load_collection",
    "save_result",
    "apply",
    "reduce_dimension",
    "apply_dimension",
    "filter_bands",
    "filter_temporal",
    "ndvi",
    "mask",
    "mask_polygon",
    "rename_labels",
    "rename_dimension",
    "add_dimension",
    "drop_dimension",
    "aggregate_temporal_period",
}


@dataclass(frozen=True)
class Chunking:
    load_node: str
    grid: Grid
    windows: list[Grid]


def windows_of(grid: Grid, max_pixels: int = CHUNK_PIXELS) -> Iterator[Grid]:
    """The grid in row bands of whole rows (at most ``max_pixels`` each; the last may be smaller)."""
    rows = max(1, max_pixels // max(grid.width, 1))
    for top in range(0, grid.height, rows):
        yield grid.block(top, 0, min(rows, grid.height - top), grid.width)


def chunking(
    graph: dict[str, Any], env: Any, chunk_values: int = CHUNK_VALUES, max_pixels: int = CHUNK_PIXELS
) -> Chunking | None:
    """How to run ``graph`` in chunks, or None when it cannot be (or need not: one window)."""
    loads = [n for n, node in graph.items() if node["process_id"] == "load_collection"]
    if len(loads) != 1 or any(node["process_id"] not in PER_PIXEL for node in graph.values()):
        return None
    saves = [node for node in graph.values() if node["process_id"] == "save_result"]
    if len(saves) != 1 or str(saves[0]["arguments"].get("format", "")).lower() not in ("gtiff", "geotiff", "tiff", "gtif"):
        return None
    for node in graph.values():  # a reduction over the spatial dimensions needs the whole grid
        if node["process_id"] in ("reduce_dimension", "apply_dimension") and node["arguments"].get("dimension") in ("x", "y"):
            return None
    args = graph[loads[0]]["arguments"]
    if any(isinstance(args.get(k), dict) and ("from_node" in args[k] or "from_parameter" in args[k]) for k in args):
        return None
    if args.get("properties"):
        return None  # its filters are callbacks: left to the one evaluation
    plan = env.plan_load(args["id"], args.get("spatial_extent"), args.get("temporal_extent"), args.get("bands"), None)
    per_pixel = max(1, len(plan.days) * len(plan.bands))
    pixels = max(4096, min(max_pixels, chunk_values // per_pixel))
    if plan.grid.pixels <= pixels:
        return None
    return Chunking(loads[0], plan.grid, list(windows_of(plan.grid, pixels)))


class Mosaic:
    """The windows' answers (each a Raster on its window of ``grid``, with the same dimensions and
    labels) written into one GeoTIFF over ``grid`` as they come, so none is kept once written;
    ``finish`` makes it a COG (``openEO.tif`` in ``folder``)."""

    def __init__(self, grid: Grid, folder: Path) -> None:
        self.grid, self.folder = grid, folder
        self.path = folder / "mosaic.tif"
        self.dst: Any = None

    def add(self, part: Raster) -> None:
        import rasterio
        from rasterio.windows import Window

        from eotasks.openeo.formats import planes_of

        planes, names = planes_of(part)
        if self.dst is None:
            self.dst = rasterio.open(
                self.path,
                "w",
                driver="GTiff",
                width=self.grid.width,
                height=self.grid.height,
                count=len(names),
                dtype="float32",
                crs=self.grid.crs,
                transform=self.grid.transform,
                nodata=float("nan"),
                tiled=True,
                blockxsize=512,
                blockysize=512,
                compress="deflate",
                BIGTIFF="IF_SAFER",
            )
            for k, name in enumerate(names, start=1):
                self.dst.set_band_description(k, name)
        row = round((part.grid.transform.f - self.grid.transform.f) / self.grid.transform.e)
        col = round((part.grid.transform.c - self.grid.transform.c) / self.grid.transform.a)
        self.dst.write(planes.astype(np.float32), window=Window(col, row, part.grid.width, part.grid.height))

    def finish(self) -> Path:
        from rasterio.shutil import copy as copy_dataset

        self.dst.close()
        cog = self.folder / "openEO.tif"
        copy_dataset(self.path, cog, driver="COG", compress="deflate", BIGTIFF="IF_SAFER")
        self.path.unlink()
        return cog
