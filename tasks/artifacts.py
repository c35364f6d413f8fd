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
                    "view_id": r.get("view_id") or " to ".join(r.get("interval", [])),  # an interval's item has none
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


PREVIEW_PX = 256  # the preview's longer side


@task(name="artifacts", task_run_name="publish", **compute_step())
def file_artifacts(task_id: str, files: list[str]) -> None:
    """What the run made, in the Prefect UI: per file its size, format, CRS, bounds, pixel size and
    valid pixels (a table), and a small preview picture of the first one."""
    store = get_store()
    rows, preview = [], None
    for key in files:
        data = store.get(key)
        row, picture = describe_file(key.rsplit("/", 1)[-1], data)
        rows.append(row)
        preview = preview or picture
    create_table_artifact(rows, description=f"{task_id}: {len(files)} file(s)")
    if preview is not None:
        key = f"{task_id}/preview.png"
        store.put(key, preview)
        create_image_artifact(image_url=store.download_url(key, ttl_s=CHART_LINK_TTL_S), description=f"{task_id}: preview")


def describe_file(name: str, data: bytes) -> tuple[dict[str, Any], bytes | None]:
    """A table row and a PNG preview for a result file (a GeoTIFF, a picture, or a zip of GeoTIFFs)."""
    import io
    import zipfile

    row: dict[str, Any] = {"file": name, "bytes": len(data)}
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.namelist()
            row["members"] = ", ".join(members)
            first = next((m for m in members if m.lower().endswith((".tif", ".tiff"))), None)
            if first is None:
                return row, None
            inner, preview = describe_file(first, z.read(first))
        return {**row, **{k: v for k, v in inner.items() if k not in ("file", "bytes")}}, preview
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings(), MemoryFile(data) as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG or JPEG picture
        ds = mem.open()
        row.update(format=ds.driver, size=f"{ds.width} x {ds.height} x {ds.count} {ds.dtypes[0]}")
        if ds.crs:
            row.update(
                crs=ds.crs.to_string(),
                bounds=", ".join(f"{v:.2f}" for v in ds.bounds),
                pixel=f"{abs(ds.res[0]):g} x {abs(ds.res[1]):g}",
            )
        scale = max(ds.width, ds.height) / PREVIEW_PX
        out = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale))) if scale > 1 else (ds.height, ds.width)
        # The file's own mask (nodata, or alpha in a picture) at full size for the count; decimated for the preview.
        row["valid pixels"] = int((ds.dataset_mask() > 0).sum())
        bands = [1, 2, 3] if ds.count >= 3 and ds.dtypes[0] == "uint8" else [1]
        values = ds.read(bands, out_shape=(len(bands), *out), masked=True)
        ds.close()
    return row, preview_png(values)


def preview_png(values: Any) -> bytes:
    """A masked array (bands, y, x) as a PNG: 8-bit RGB as it is; one band stretched between its 2nd
    and 98th percentiles in grey; masked pixels transparent."""
    import io

    import numpy as np
    from PIL import Image

    mask = np.ma.getmaskarray(values).any(axis=0)
    data = np.ma.getdata(values).astype("float64")
    if data.shape[0] == 3 and values.dtype == np.uint8:
        rgb = data
    else:
        valid = data[0][~mask]
        lo, hi = np.percentile(valid, [2, 98]) if valid.size else (0.0, 1.0)
        grey = np.clip((data[0] - lo) / ((hi - lo) or 1.0), 0, 1) * 255
        rgb = np.stack([grey, grey, grey])
    alpha = np.where(mask, 0, 255)
    image = np.dstack([*rgb.astype("uint8"), alpha.astype("uint8")])
    out = io.BytesIO()
    Image.fromarray(image, "RGBA").save(out, format="PNG")
    return out.getvalue()
