"""Monitoring (scheduled): statistics of an index over a saved AOI, or a FeatureCollection of fields,
for the last N days, every run.

An operator's job, not an API task: it runs from a schedule in prefect.yaml, needs no API key, and
keeps each run's answer in the result store under ``monitoring/<name>/<run time>.json``.

scene_lookup -> per scene: stats (batches, concurrently) -> publish (JSON, table and chart artifacts)
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from eotasks.models import MtStatsParams
from flows._common import failing_as_told, flow_timeout, safe_name, time_series_runner
from flows.mt_stats import time_series
from tasks.artifacts import field_artifacts, series_artifacts
from tasks.publish import publish


@flow(
    name="monitor",
    persist_result=True,
    result_serializer="json",
    task_runner=time_series_runner(),
    timeout_seconds=flow_timeout(),
)
@failing_as_told
def monitor(
    name: str,
    bm_type: str | list[str],
    geometry: dict[str, Any] | None = None,
    cropper_ref: str | None = None,
    fields: dict[str, Any] | None = None,
    coverage: str = "centre",
    sensors: list[str] | None = None,
    days: int = 30,
    end_date: dt.date | None = None,
    max_cloud_cover_in_aoi: float = 100.0,
    cloud_masking_level: int = 1,
) -> Any:
    end = end_date or dt.datetime.now(dt.UTC).date()
    params = MtStatsParams(
        date_start=end - dt.timedelta(days=days),
        date_end=end,
        bm_type=bm_type,
        geometry=geometry,
        cropper_ref=cropper_ref,
        fields=fields,
        coverage=coverage,
        sensors=sensors,
        max_cloud_cover_in_aoi=max_cloud_cover_in_aoi,
        cloud_masking_level=cloud_masking_level,
    )
    answer = time_series(params)
    result = answer.as_dict()
    started = flow_run.scheduled_start_time or dt.datetime.now(dt.UTC)
    folder, stamp = f"monitoring/{safe_name(name)}", f"{started:%Y%m%dT%H%M%SZ}"
    [key] = publish(folder, {f"{stamp}.json": json.dumps({"params": params.model_dump(mode="json"), **result}).encode()})
    if fields is not None:
        field_artifacts(f"{folder}/{stamp}", answer)
    else:
        series_artifacts(f"{folder}/{stamp}", answer)
    get_run_logger().info("kept %d results (%d left out) as %s", len(result["result"]), len(result["errors"]), key)
    return {"key": key, "scenes": len(result["result"]), "errors": len(result["errors"])}
