"""SPEC §6's building blocks: intervals against the calendar and ISO-8601 arithmetic written out by
hand, composites against numpy's nan-reducers over a synthetic series with clouds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from eotasks.intervals import PeriodError, intervals
from eotasks.raster.composite import Composite, composite

D = dt.date


def test_ten_day_periods_from_the_first_day_and_the_three_last_interval_rules():
    start, end = D(2023, 1, 1), D(2023, 1, 25)
    assert intervals(start, end, "P10D", "skip") == [(D(2023, 1, 1), D(2023, 1, 10)), (D(2023, 1, 11), D(2023, 1, 20))]
    assert intervals(start, end, "P10D", "shorten")[-1] == (D(2023, 1, 21), D(2023, 1, 25))
    assert intervals(start, end, "P10D", "extend")[-1] == (D(2023, 1, 21), D(2023, 1, 30))
    # An interval that ends exactly on the last day is whole under every rule.
    for rule in ("skip", "shorten", "extend"):
        assert intervals(D(2023, 1, 1), D(2023, 1, 20), "P10D", rule)[-1] == (D(2023, 1, 11), D(2023, 1, 20))


def test_months_and_weeks_follow_iso_arithmetic():
    assert intervals(D(2023, 1, 31), D(2023, 4, 29), "P1M", "skip") == [
        (D(2023, 1, 31), D(2023, 2, 27)),  # Jan 31 + 1 month = Feb 28 (clamped); the next starts there
        (D(2023, 2, 28), D(2023, 3, 30)),  # Jan 31 + 2 months = Mar 31
        (D(2023, 3, 31), D(2023, 4, 29)),  # Jan 31 + 3 months = Apr 30
    ]
    assert intervals(D(2023, 1, 2), D(2023, 1, 29), "P2W") == [(D(2023, 1, 2), D(2023, 1, 15)), (D(2023, 1, 16), D(2023, 1, 29))]
    assert intervals(D(2020, 2, 29), D(2022, 2, 28), "P1Y") == [
        (D(2020, 2, 29), D(2021, 2, 27)),
        (D(2021, 2, 28), D(2022, 2, 27)),
    ]


def test_calendar_periods_are_aligned_to_the_calendar_and_clipped():
    dekads = intervals(D(2023, 2, 5), D(2023, 3, 15), "dekad")
    assert dekads == [
        (D(2023, 2, 5), D(2023, 2, 10)),
        (D(2023, 2, 11), D(2023, 2, 20)),
        (D(2023, 2, 21), D(2023, 2, 28)),
        (D(2023, 3, 1), D(2023, 3, 10)),
        (D(2023, 3, 11), D(2023, 3, 15)),
    ]
    months = intervals(D(2024, 1, 15), D(2024, 3, 31), "month")
    assert months == [(D(2024, 1, 15), D(2024, 1, 31)), (D(2024, 2, 1), D(2024, 2, 29)), (D(2024, 3, 1), D(2024, 3, 31))]
    weeks = intervals(D(2023, 1, 4), D(2023, 1, 16), "week")  # ISO weeks start on Monday (Jan 2, 9, 16)
    assert weeks == [(D(2023, 1, 4), D(2023, 1, 8)), (D(2023, 1, 9), D(2023, 1, 15)), (D(2023, 1, 16), D(2023, 1, 16))]
    seasons = intervals(D(2023, 1, 10), D(2023, 12, 31), "season")
    assert seasons == [
        (D(2023, 1, 10), D(2023, 2, 28)),  # DJF of the 2022/23 winter
        (D(2023, 3, 1), D(2023, 5, 31)),
        (D(2023, 6, 1), D(2023, 8, 31)),
        (D(2023, 9, 1), D(2023, 11, 30)),
        (D(2023, 12, 1), D(2023, 12, 31)),  # DJF of the next winter, clipped
    ]
    assert intervals(D(2022, 6, 1), D(2023, 2, 1), "year") == [(D(2022, 6, 1), D(2022, 12, 31)), (D(2023, 1, 1), D(2023, 2, 1))]
    assert len(intervals(D(2023, 1, 1), D(2023, 1, 31), "day")) == 31


@pytest.mark.parametrize("bad", ["P0D", "PT1H", "10D", "fortnight", "P", "P1.5D"])
def test_bad_periods_are_refused(bad):
    with pytest.raises(PeriodError):
        intervals(D(2023, 1, 1), D(2023, 2, 1), bad)


def series_with_clouds(seed: int = 7, scenes: int = 6, shape=(40, 50)):
    rng = np.random.default_rng(seed)
    values = rng.uniform(-0.2, 0.9, (scenes, *shape))
    values[rng.random((scenes, *shape)) < 0.35] = np.nan  # clouds and nodata
    values[:, :3, :3] = np.nan  # a corner never observed
    return values


@pytest.mark.parametrize(
    ("reducer", "reference"),
    [
        ("mean", lambda v: np.nanmean(v, axis=0)),
        ("median", lambda v: np.nanmedian(v, axis=0)),
        ("min", lambda v: np.nanmin(v, axis=0)),
        ("max", lambda v: np.nanmax(v, axis=0)),
    ],
)
def test_composites_equal_numpys_nan_reducers_over_clear_observations(reducer, reference):
    values = series_with_clouds()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # numpy warns of the never-seen corner
        want = reference(values)
    got = composite(values, reducer)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-12)


def test_first_and_last_take_the_earliest_and_latest_clear_observation():
    values = series_with_clouds()
    seen = ~np.isnan(values)
    first_index = np.argmax(seen, axis=0)
    last_index = values.shape[0] - 1 - np.argmax(seen[::-1], axis=0)
    rows, cols = np.indices(values.shape[1:])
    never = ~seen.any(axis=0)
    want_first = np.where(never, np.nan, values[first_index, rows, cols])
    want_last = np.where(never, np.nan, values[last_index, rows, cols])
    np.testing.assert_array_equal(composite(values, "first"), want_first)
    np.testing.assert_array_equal(composite(values, "last"), want_last)


def test_the_count_of_observations_and_a_bad_reducer():
    values = series_with_clouds()
    acc = Composite("mean", values.shape[1:])
    for plane in values:
        acc.add(plane)
    assert np.array_equal(acc.count, (~np.isnan(values)).sum(axis=0))
    with pytest.raises(ValueError):
        Composite("mode", (2, 2))
