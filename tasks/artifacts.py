"""Step ``artifacts`` (stage ``publish``): what an operator sees of a time series in the Prefect UI.

A table of the per-scene results and a chart for one AOI; for thousands of fields, one row per field
(scenes used, latest value, season min and max) and a chart of the distribution over the fields by
date, never a row per field and scene.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_image_artifact, create_table_artifact

from eotasks.raster.chart import timeseries_svg
from eotasks.stats_answer import TimeSeriesAnswer
from eotasks.store import get_store
from tasks._policy import compute_step

CHART_LINK_TTL_S = 30 * 86400  # (an S3 store signs for at most 7 days)


def _chart(key: str, answer: dict[str, Any], indices: list[str], description: str) -> None:
    store = get_store()
    store.put(key, timeseries_svg(answer, indices))
    create_image_artifact(image_url=store.download_url(key, ttl_s=CHART_LINK_TTL_S), description=description)


@task(name="artifacts", task_run_name="publish", **compute_step())
def series_artifacts(task_id: str, built: TimeSeriesAnswer) -> None:
    answer, indices = built.as_dict(), built.indices
    rows = []
    for r in answer["result"]:
        stats = r["indexes"] if "indexes" in r else {indices[0]: r}
        for index, s in stats.items():
            rows.append(
                {
                    "date": r["date"],
                    "view_id": r["view_id"],
                    "index": index,
                    "cloud %": round(r["cloud"], 2),
                    **{k: round(s[k], 4) for k in ("average", "median", "min", "max", "q1", "q3", "std")},
                }
            )
    for e in answer["errors"]:
        rows.append({"date": e.get("date", ""), "view_id": e.get("view_id", ""), "index": "-", "error": e["error"]})
    create_table_artifact(rows, description=f"{task_id}: {len(answer['result'])} scenes, {len(answer['errors'])} left out")
    if answer["result"]:
        _chart(f"{task_id}/timeseries.svg", answer, indices, "average and q1-q3 band per index")


@task(name="artifacts", task_run_name="publish", **compute_step())
def field_artifacts(task_id: str, answer: TimeSeriesAnswer) -> None:
    index = answer.indices[0]
    left = len(answer.field_order) - len(answer.summaries)
    create_table_artifact(
        answer.field_table(), description=f"{task_id}: {len(answer.summaries)} fields with results ({index}), {left} without any"
    )
    distribution = answer.distribution()
    if distribution["result"]:
        _chart(f"{task_id}/fields.svg", distribution, [index], f"{index}: median and q1-q3 of the fields' averages, by date")
