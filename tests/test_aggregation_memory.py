"""SPEC §6's memory bound: a median composite over a year of scenes of a large AOI holds one strip of
the common grid per scene, never every scene's whole array; and the strips give exactly the
answer one strip over the whole AOI gives."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from shapely.geometry import shape

import eotasks.aggregate as aggregate
from eotasks.aggregate import common_grid, interval_statistics
from eotasks.catalog.demo import generate_demo
from eotasks.catalog.scenes import list_scenes
from eotasks.settings import reset_settings
from eotasks.timeseries import PLANS, Field, StatsOptions

STRIP = 1 << 12  # small strips, so that a demo tile is many of them


@pytest.fixture
def year(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    reset_settings()
    generate_demo(tmp_path / "demo", s2_scenes=24, landsat_scenes=0, s2_every_days=15)
    yield sorted(list_scenes("sentinel2l2a"), key=lambda r: r.date)
    monkeypatch.delenv("EOTASKS_DATABASE_URL")
    reset_settings()


def test_a_years_median_over_the_whole_tile_holds_a_strip_per_scene(year, monkeypatch):
    footprint = shape(year[0].footprint)
    aoi = footprint.buffer(-0.002)  # the whole tile but its edge
    fields = [Field(None, aoi)]
    grid = common_grid(year, ["sentinel2l2a"], ["NDVI"], fields)
    options = StatsOptions(exclude_cover_pixels=True)
    whole = interval_statistics("2023-01-01", "2023-12-31", year, ["NDVI"], fields, grid, options, "median")

    monkeypatch.setattr(aggregate, "STRIP_PIXELS", STRIP)
    PLANS.items.clear()
    interval_statistics("2023-01-01", "2023-12-31", year[:1], ["NDVI"], fields, grid, options, "median")  # warm caches
    tracemalloc.start()
    try:
        strips = interval_statistics("2023-01-01", "2023-12-31", year, ["NDVI"], fields, grid, options, "median")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    scenes, pixels = len(year), grid.pixels
    assert scenes == 24 and pixels > 8 * STRIP
    naive = scenes * pixels * 8  # every scene's NDVI of the AOI held at once, float64
    # The bound: the median's strip per scene (float64), six times over for the stack and the
    # copies numpy's nanmedian makes of it, plus what the statistics keep per AOI pixel (the plan's
    # cell index, weight and owner; the composite's value, weight and owner: 48 B), plus 4 MB for
    # one strip's reads.
    bound = 6 * scenes * STRIP * 8 + 48 * pixels + (4 << 20)
    print(f"peak {peak / 1e6:.1f} MB for {scenes} scenes x {pixels:,} px; bound {bound / 1e6:.1f} MB; naive {naive / 1e6:.1f} MB")
    assert peak <= bound and peak < naive / 2  # and it does not grow with the scenes as the naive way does
    # Strips change nothing in the answer.
    [a], [b] = whole.rows, strips.rows
    assert a.scene.scenes == b.scene.scenes and a.cloud == pytest.approx(b.cloud, abs=1e-12)
    for key, value in a.indexes["NDVI"].items():
        assert b.indexes["NDVI"][key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert np.isfinite(a.indexes["NDVI"]["median"])
