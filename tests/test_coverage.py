"""Exact coverage and weighted statistics (groundwork for issue 11's fields), against exactextract's
own results on the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from exactextract import exact_extract
from exactextract.feature import JSONFeatureSource
from exactextract.raster import NumPyRasterSource
from shapely.geometry import Polygon, mapping

from eotasks.raster.coverage import exact_coverage
from eotasks.raster.stats import grouped_summaries

TRANSFORM = Affine(10, 0, 500000, 0, -10, 4000500)  # 50 x 50 px of 10 m
W = H = 50
FIELDS = {
    "triangle": Polygon([(500013, 4000487), (500391, 4000302), (500120, 4000066), (500013, 4000487)]),
    "one pixel": Polygon([(500203, 4000297), (500212, 4000297), (500212, 4000288), (500203, 4000288)]),  # 9 x 9 m, across 4 px
    "sliver": Polygon([(500000.5, 4000100), (500499.5, 4000103), (500499.5, 4000104), (500000.5, 4000101)]),
    "ring": Polygon(
        [(500050, 4000050), (500450, 4000050), (500450, 4000450), (500050, 4000450)],
        [[(500150, 4000150), (500350, 4000150), (500350, 4000350), (500150, 4000350)]],
    ),
}
STATS = [
    "mean",
    "variance",
    "stdev",
    "median",
    "quantile(q=0.1)",
    "quantile(q=0.25)",
    "quantile(q=0.75)",
    "quantile(q=0.9)",
    "min",
    "max",
    "count",
]


@pytest.fixture(scope="module")
def values():
    return np.random.default_rng(7).normal(0.4, 0.2, (H, W))


def theirs(values, geom):
    raster = NumPyRasterSource(values, xmin=500000, ymin=4000000, xmax=500500, ymax=4000500)
    [out] = exact_extract(
        raster,
        JSONFeatureSource([{"type": "Feature", "id": 0, "properties": {}, "geometry": mapping(geom)}]),
        STATS,
        output="geojson",
    )
    return out["properties"]


@pytest.mark.parametrize("name", list(FIELDS))
def test_weighted_statistics_equal_exactextracts(values, name):
    cov = exact_coverage(FIELDS[name], TRANSFORM, W, H)
    assert cov.cells.size > 0 and (cov.weights > 0).all() and (cov.weights <= 1 + 1e-9).all()
    v = values.ravel()[cov.cells]
    ours = {
        k: float(a[0])
        for k, a in grouped_summaries(v, cov.weights, np.zeros(v.size, np.int64), 1, [0.1, 0.25, 0.5, 0.75, 0.9]).items()
    }
    ours["std"] = ours["variance"] ** 0.5
    ref = theirs(values, FIELDS[name])
    pairs = {
        "average": "mean",
        "variance": "variance",
        "std": "stdev",
        "q2": "median",
        "q0": "quantile_10",
        "q1": "quantile_25",
        "q3": "quantile_75",
        "q4": "quantile_90",
        "min": "min",
        "max": "max",
        "count": "count",
    }
    for key, theirs_key in pairs.items():
        assert ours[key] == pytest.approx(ref[theirs_key], rel=1e-6, abs=1e-9), (name, key)


def test_a_one_pixel_field_is_never_empty(values):
    cov = exact_coverage(FIELDS["one pixel"], TRANSFORM, W, H)
    assert cov.cells.size == 4 and cov.weights.sum() == pytest.approx(81 / 100)  # 81 m2 over four 100 m2 pixels


def test_equal_weights_give_numpys_linear_percentiles():
    v = np.random.default_rng(3).random(101)
    qs = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    out = grouped_summaries(v, np.ones_like(v), np.zeros(v.size, np.int64), 1, qs)
    np.testing.assert_allclose([out[f"q{k}"][0] for k in range(len(qs))], np.percentile(v, [q * 100 for q in qs]), rtol=1e-12)


def test_coverage_is_computed_on_the_fields_window_only():
    far = Polygon([(500480, 4000020), (500495, 4000020), (500495, 4000005), (500480, 4000005)])
    cov = exact_coverage(far, TRANSFORM, W, H)
    rows, cols = cov.rows_cols()
    assert rows.min() >= 47 and cols.min() >= 47  # flat indices into the whole grid, from a 3 x 3 window
    outside = Polygon([(0, 0), (1, 0), (1, 1)])
    assert exact_coverage(outside, TRANSFORM, W, H).cells.size == 0


@pytest.mark.parametrize("huge", [False, True])
def test_group_value_order_is_a_stable_lexsort(huge, monkeypatch):
    """The fast order (group, value, ties in input order) is exactly a stable lexsort's, ties and
    signed zeros included; and the fallback taken when its integer key would overflow is too."""
    from eotasks.raster import stats

    rng = np.random.default_rng(11)
    v = np.round(rng.normal(0, 0.3, 20_000), 2)  # many ties
    v[rng.integers(0, v.size, 50)] = -0.0
    g = rng.integers(0, 300, v.size)
    if huge:  # a group number that makes (group, rank, position) overflow 63 bits
        g[0] = 2**62 // (v.size * 10)
    order = stats._order_by_group_value_position(v, g)
    np.testing.assert_array_equal(order, np.lexsort((v, g)))
    assert stats._order_by_group_value_position(np.zeros(0), np.zeros(0, np.int64)).size == 0
