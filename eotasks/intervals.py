"""SPEC §6's intervals: ISO-8601 periods anchored at the first day, or openEO's calendar periods.

    intervals(dt.date(2023, 1, 1), dt.date(2023, 3, 31), "P10D", "skip")
    -> [(2023-01-01, 2023-01-10), (2023-01-11, 2023-01-20), ..., (2023-03-22, 2023-03-31)]

Each interval is (first day, last day), both inclusive. Plain functions: no database, HTTP or
Prefect; the flows and an openEO ``aggregate_temporal_period`` call the same ones.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

CALENDAR = ("day", "week", "dekad", "month", "season", "year")
LAST_INTERVAL = ("skip", "shorten", "extend")
_ISO = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")
Interval = tuple[dt.date, dt.date]


class PeriodError(ValueError):
    pass


def parse_period(period: str) -> tuple[int, int] | str:
    """(months, days) of an ISO-8601 duration of years, months, weeks and days, or a calendar name."""
    if period in CALENDAR:
        return period
    found = _ISO.match(period)
    if not found or not any(found.groups()):
        raise PeriodError(
            f"{period!r} is neither an ISO-8601 duration of days, weeks, months or years (P10D, P2W, P1M, P1Y) "
            f"nor one of {', '.join(CALENDAR)}"
        )
    years, months, weeks, days = (int(g or 0) for g in found.groups())
    total_months, total_days = 12 * years + months, 7 * weeks + days
    if total_months == 0 and total_days == 0:
        raise PeriodError(f"{period!r} is an empty duration")
    return total_months, total_days


def _add(day: dt.date, months: int, days: int) -> dt.date:
    """``day`` + months (clamped to the month's last day, as ISO-8601 arithmetic does) + days."""
    if months:
        index = day.month - 1 + months
        year, month = day.year + index // 12, index % 12 + 1
        day = day.replace(year=year, month=month, day=min(day.day, _month_days(year, month)))
    return day + dt.timedelta(days=days)


def _month_days(year: int, month: int) -> int:
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day


def intervals(start: dt.date, end: dt.date, period: str, last_interval: str = "skip") -> list[Interval]:
    """The intervals from ``start`` to ``end`` (inclusive). An ISO duration follows on from
    ``start`` without gaps; the last one, when it would pass ``end``, is left out (``skip``), cut at
    ``end`` (``shorten``) or kept whole (``extend``). A calendar period is aligned to the calendar
    and clipped to [start, end]."""
    if end < start:
        raise PeriodError("the end is before the start")
    if last_interval not in LAST_INTERVAL:
        raise PeriodError(f"last_interval must be one of {', '.join(LAST_INTERVAL)}")
    parsed = parse_period(period)
    if isinstance(parsed, str):
        return [(max(a, start), min(b, end)) for a, b in _calendar(start, end, parsed)]
    months, days = parsed
    out: list[Interval] = []
    k, first = 0, start
    while first <= end:
        # Each interval starts at start + k periods (not the previous end + 1 period: months drift).
        following = _add(start, months * (k + 1), days * (k + 1))
        last = following - dt.timedelta(days=1)
        if last > end:
            if last_interval == "shorten":
                out.append((first, end))
            elif last_interval == "extend":
                out.append((first, last))
            break
        out.append((first, last))
        k, first = k + 1, following
    return out


def _calendar(start: dt.date, end: dt.date, name: str) -> Iterator[Interval]:
    day = _calendar_start(start, name)
    while day <= end:
        following = _calendar_next(day, name)
        yield day, following - dt.timedelta(days=1)
        day = following


def _calendar_start(day: dt.date, name: str) -> dt.date:
    if name == "day":
        return day
    if name == "week":  # ISO weeks, Monday first
        return day - dt.timedelta(days=day.weekday())
    if name == "dekad":
        return day.replace(day=1 if day.day <= 10 else 11 if day.day <= 20 else 21)
    if name == "month":
        return day.replace(day=1)
    if name == "season":  # DJF, MAM, JJA, SON: a December starts the next year's winter
        month = (day.month // 3) * 3 or 12
        return dt.date(day.year - 1 if day.month < 3 else day.year, month, 1) if month == 12 else dt.date(day.year, month, 1)
    return day.replace(month=1, day=1)


def _calendar_next(day: dt.date, name: str) -> dt.date:
    if name == "day":
        return day + dt.timedelta(days=1)
    if name == "week":
        return day + dt.timedelta(days=7)
    if name == "dekad":
        return day.replace(day=day.day + 10) if day.day < 21 else _add(day.replace(day=1), 1, 0)
    if name == "month":
        return _add(day, 1, 0)
    if name == "season":
        return _add(day, 3, 0)
    return day.replace(year=day.year + 1)
