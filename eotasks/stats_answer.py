"""What a client reads of ``mt_stats``: per-scene rows -> SPEC's answer, JSON or CSV, as a stream.

Rows are serialized the moment a batch of scenes hands them over and kept as bytes with their sort
key (field as sent, then date), so a large answer costs about its own size in memory, never a
Python object per number, and it is written to the store in pieces, not built as one string.

A string ``bm_type`` gives flat statistics in each item, a list gives ``indexes``; a request with
fields gives each item its ``field_id``. The per-field summary and the distribution by date that an
operator sees in the Prefect UI are kept as the rows go by.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from eotasks.timeseries import IntervalRef, SceneOutcome, SceneRef, SceneRow, SkippedRow

CSV_STATS = ("count", "nodata_count", "average", "median", "min", "max", "std", "variance", "q1", "q3", "p10", "p90")


def _base(scene: SceneRef) -> dict[str, Any]:
    if isinstance(scene, IntervalRef):
        return {"interval": [scene.date, scene.last], "date": scene.date, "scenes": list(scene.scenes)}
    return {"scene_id": scene.scene_id, "view_id": scene.view_id, "date": scene.date}


@dataclass
class FieldSummary:
    """What the Prefect UI shows of one field: scenes used, latest value, season min and max."""

    scenes: int = 0
    latest: tuple[str, float] = ("", float("nan"))
    low: float = float("inf")
    high: float = float("-inf")


class TimeSeriesAnswer:
    """The answer of one request, built row by row. A plain class, not a dataclass: passed to a
    step, Prefect would walk a dataclass's every row looking for futures."""

    def __init__(
        self,
        bm_type: str | list[str],
        field_order: dict[Any, int],
        output_format: str = "json",
        percentiles: Sequence[float] = (),
        histogram_bins: int = 0,
    ) -> None:
        self.bm_type = bm_type
        self.field_order = field_order  # field id -> position as sent; {None: 0} for a single AOI
        self.output_format = output_format  # "json" or "csv"
        self.percentiles = percentiles
        self.histogram_bins = histogram_bins
        self._results: list[tuple[tuple, bytes]] = []
        self._errors: list[tuple[tuple, bytes]] = []
        self.summaries: dict[Any, FieldSummary] = {}
        self.by_date: dict[str, list[float]] = {}  # the first index's averages of the fields, by date
        self.size = 0

    @property
    def indices(self) -> list[str]:
        return [self.bm_type] if isinstance(self.bm_type, str) else list(self.bm_type)

    @property
    def fields(self) -> bool:
        return None not in self.field_order

    @property
    def result_count(self) -> int:
        return len(self._results)

    @property
    def error_count(self) -> int:
        return len(self._errors)

    def _key(self, field_id: Any, scene: SceneRef | None) -> tuple:
        return (self.field_order.get(field_id, 0), scene.date if scene else "", scene.view_id if scene else "")

    # -- rows in --------------------------------------------------------------------------------------

    def add(self, outcome: SceneOutcome) -> None:
        for row in outcome.rows:
            self._keep(self._results, self._key(row.field_id, row.scene), self._row_bytes(row))
            self._summarize(row)
        for skipped in outcome.skipped:
            self.add_skipped(skipped)

    def add_skipped(self, skipped: SkippedRow) -> None:
        self._keep(self._errors, self._key(skipped.field_id, skipped.scene), self._skipped_bytes(skipped))

    def _keep(self, into: list, key: tuple, data: bytes) -> None:
        into.append((key, data))
        self.size += len(data)

    def result_item(self, row: SceneRow) -> dict[str, Any]:
        item: dict[str, Any] = {"field_id": row.field_id} if self.fields else {}
        item.update(_base(row.scene))
        item["cloud"] = row.cloud
        if row.unmasked:
            item["unmasked"] = True
        if isinstance(self.bm_type, str):
            item.update(row.indexes[self.bm_type])
        else:
            item["indexes"] = {index: row.indexes[index] for index in self.bm_type}
        return item

    def error_item(self, skipped: SkippedRow) -> dict[str, Any]:
        item: dict[str, Any] = {"status": False}
        if self.fields:
            item["field_id"] = skipped.field_id
        if skipped.scene is not None:
            item.update(_base(skipped.scene))
        item["error"] = skipped.error
        return item

    def _row_bytes(self, row: SceneRow) -> bytes:
        if self.output_format == "csv":
            return self._csv_lines(row)
        return orjson.dumps(self.result_item(row))

    def _skipped_bytes(self, skipped: SkippedRow) -> bytes:
        if self.output_format == "csv":
            scene = skipped.scene
            cells = [
                skipped.field_id,
                scene.date if scene else "",
                scene.view_id if scene else "",
                scene.scene_id if scene else "",
            ]
            return _csv([*cells, *[""] * (len(self.csv_header()) - 5), skipped.error])
        return orjson.dumps(self.error_item(skipped))

    def _summarize(self, row: SceneRow) -> None:
        value = row.indexes[self.indices[0]]["average"]
        date = row.scene.date
        s = self.summaries.setdefault(row.field_id, FieldSummary())
        s.scenes += 1
        if date >= s.latest[0]:
            s.latest = (date, value)
        s.low, s.high = min(s.low, value), max(s.high, value)
        self.by_date.setdefault(date, []).append(value)

    # -- CSV --------------------------------------------------------------------------------------------

    def csv_header(self) -> list[str]:
        header = [
            "field_id",
            "date",
            "view_id",
            "scene_id",
            "index",
            "cloud",
            *CSV_STATS,
            *[f"p_{p:g}" for p in self.percentiles],
        ]
        if self.histogram_bins:
            header += ["hist_underflow", *[f"hist_{i}" for i in range(self.histogram_bins)], "hist_overflow"]
        return [*header, "error"]

    def _csv_lines(self, row: SceneRow) -> bytes:
        out = []
        for index in self.indices:
            s = row.indexes[index]
            cells = [
                row.field_id,
                row.scene.date,
                row.scene.view_id,
                row.scene.scene_id,
                index,
                row.cloud,
                *[s.get(k) for k in CSV_STATS],
                *[(s.get("percentiles") or {}).get(f"{p:g}") for p in self.percentiles],
            ]
            if self.histogram_bins:
                h = s.get("histogram") or {}
                cells += [h.get("underflow"), *(h.get("counts") or [None] * self.histogram_bins), h.get("overflow")]
            out.append(_csv([*cells, ""]))
        return b"".join(out)

    # -- the answer out ----------------------------------------------------------------------------------

    def chunks(self) -> Iterator[bytes]:
        """The whole answer, in order, a row at a time."""
        results = sorted(self._results, key=lambda kv: kv[0])
        errors = sorted(self._errors, key=lambda kv: kv[0])
        if self.output_format == "csv":
            yield _csv(self.csv_header())
            for _, data in results:
                yield data
            for _, data in errors:
                yield data
            return
        yield b'{"errors":['
        for i, (_, data) in enumerate(errors):
            yield (b"," if i else b"") + data
        yield b'],"result":['
        for i, (_, data) in enumerate(results):
            yield (b"," if i else b"") + data
        yield b"]}"

    def write(self, f: IO[bytes]) -> None:
        for chunk in self.chunks():
            f.write(chunk)

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer as a dict (a single AOI's answer is the run's result; bounded at submission)."""
        return orjson.loads(b"".join(self.chunks()))

    def field_table(self, limit: int = 1000) -> list[dict[str, Any]]:
        index = self.indices[0]
        rows = []
        for fid, s in sorted(self.summaries.items(), key=lambda kv: self.field_order.get(kv[0], 0))[:limit]:
            rows.append(
                {
                    "field_id": fid,
                    "scenes": s.scenes,
                    "latest date": s.latest[0],
                    f"latest {index}": round(s.latest[1], 4),
                    "season min": round(s.low, 4),
                    "season max": round(s.high, 4),
                }
            )
        return rows

    def distribution(self) -> dict[str, Any]:
        """Median and quartiles of the fields' averages, by date, in the answer's shape (for the chart)."""
        index = self.indices[0]
        result = []
        for date, values in sorted(self.by_date.items()):
            qs = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
            result.append({"date": date, "indexes": {index: {"average": statistics.median(values), "q1": qs[0], "q3": qs[2]}}})
        return {"errors": [], "result": result}


def _csv(cells: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().encode()
