"""The Python client (eotasks.client), the CLI on it (``eotasks run``/``eotasks task``) and the long
poll (SPEC §7) against a real gateway, served deployments and Prefect server: what a program or an
analyst at a terminal does, checked against an independent computation of the pixels."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import rasterio
from sqlalchemy import text

from eotasks.client import BadRequest, Client, Forbidden, TaskFailed, Unauthorized
from eotasks.db import create_api_key, get_engine
from tests.conftest import SAMPLE_VIEW_ID
from tests.stack import Stack
from tests.test_e2e import GEOMETRY, check_ndvi_tif

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(prefect_server, tmp_path_factory):
    s = Stack(
        tmp_path_factory.mktemp("client-stack"),
        prefect_server,
        {"EOTASKS_IO_RETRIES": "1"},
        deployments=["bandmath/eotasks", "mt_stats/eotasks"],
    )
    yield s
    s.stop()


def flow_run_of(stack, task_id: str) -> str:
    with get_engine(stack.db_url).connect() as conn:
        return str(conn.execute(text("SELECT flow_run_id FROM tasks WHERE id = :id"), {"id": task_id}).scalar_one())


def run_logs(stack, task_id: str, until, seconds: float = 20) -> list[dict]:
    """The run's log lines as the Prefect server has them (they arrive in batches)."""
    api, run_id = stack.service.env["PREFECT_API_URL"], flow_run_of(stack, task_id)
    deadline = time.monotonic() + seconds
    while True:
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}).json()
        if until([entry["message"] for entry in logs]) or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def test_submit_wait_with_progress_and_download(stack, tmp_path, capsys):
    with Client(stack.base, stack.key) as client:
        task = client.submit("bandmath", view_id=SAMPLE_VIEW_ID, bm_type="NDVI", geometry=GEOMETRY, reference="field 7")
        task.wait(timeout=180, progress=True)
        path = task.download(tmp_path)
    assert path.parent == tmp_path and path.suffix.lower() == ".tif"
    check_ndvi_tif(path.read_bytes())
    shown = capsys.readouterr()
    assert "finished" in shown.err and str(path) not in shown.out  # the bar, on stderr
    # In the Prefect UI the run is labelled with the key's name (never the key) and the reference,
    # and carries the file's artifacts: a table (size, CRS, valid pixels) and a preview picture.
    api = stack.service.env["PREFECT_API_URL"]
    run = httpx.get(f"{api}/flow_runs/{flow_run_of(stack, task.id)}").json()
    assert run["labels"]["eotasks.key"] == "e2e" and run["labels"]["eotasks.reference"] == "field 7", run["labels"]
    assert run["labels"]["eotasks.task_id"] == task.id and stack.key not in json.dumps(run)
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).json()
    kinds = {a["type"] for a in artifacts}
    assert {"table", "image"} <= kinds, kinds
    [table] = [a for a in artifacts if a["type"] == "table"]
    [row] = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    with rasterio.open(path) as ds:
        assert row["crs"] == ds.crs.to_string() and row["bytes"] == path.stat().st_size
        assert row["valid pixels"] == int((ds.dataset_mask() > 0).sum()) > 1000


def test_typed_errors_carry_the_field(stack):
    with Client(stack.base, stack.key) as client:
        with pytest.raises(BadRequest) as refused:
            client.submit("bandmath", view_id=SAMPLE_VIEW_ID, bm_type="NDVI", bbox=[1, 2, 3])
        assert refused.value.status == 400 and refused.value.field == "params.bbox"
        # A scene the catalogue does not have is the run's to answer (SPEC): a failed task, its sentence.
        task = client.submit("bandmath", view_id="S2/18/S/VG/2020/6/16/0", bm_type="NDVI", geometry=GEOMETRY)
        with pytest.raises(TaskFailed) as failed:
            task.wait(timeout=180)
        assert failed.value.stage == "scene_lookup" and "does not exist" in failed.value.error
    # The operator's log of that run: the client's sentence on one WARNING line, no traceback.
    logs = run_logs(stack, task.id, until=lambda lines: any("does not exist" in m for m in lines))
    said = [entry for entry in logs if "does not exist" in entry["message"]]
    assert said and all(entry["level"] <= 30 for entry in said), [(e["name"], e["level"], e["message"][:3000]) for e in said]
    assert not any("Traceback" in entry["message"] for entry in logs), [e["message"][:300] for e in logs]
    with Client(stack.base, "apk.not-a-key") as client, pytest.raises(Forbidden) as forbidden:
        client.tasks()
    assert forbidden.value.status == 403 and forbidden.value.field == "api_key"


def test_with_no_key_anywhere_the_client_says_so_before_any_request(monkeypatch, tmp_path):
    monkeypatch.delenv("EOTASKS_API_KEY", raising=False)
    monkeypatch.setenv("EOTASKS_DATA_DIR", str(tmp_path))  # no demo.key there
    with pytest.raises(Unauthorized) as missing:
        Client("http://127.0.0.1:9")
    assert missing.value.field == "api_key"


def test_the_cli_runs_waits_and_writes_the_file(stack, tmp_path):
    geometry = tmp_path / "field.geojson"
    geometry.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": GEOMETRY}))
    out = tmp_path / "ndvi.tif"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EOTASKS_URL": stack.base, "EOTASKS_API_KEY": stack.key}
    args = ["run", "bandmath", "--view-id", SAMPLE_VIEW_ID, "--bm-type", "NDVI", "--geometry", str(geometry), "--wait"]
    done = subprocess.run(
        [sys.executable, "-m", "eotasks.cli", *args, "-o", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    check_ndvi_tif(out.read_bytes())
    # A refused request: exit 2 and one line naming the field, no traceback.
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "eotasks.cli",
            "run",
            "bandmath",
            "--view-id",
            SAMPLE_VIEW_ID,
            "--bm-type",
            "NDVI",
            "--bbox",
            "1,2,3",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "params.bbox" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def limit_count(db_url: str, key_id: int) -> tuple[int, float]:
    """The key's requests this minute as the gateway counted them (the usage table), and the window's end."""
    with get_engine(db_url).connect() as conn:
        row = conn.execute(
            text("SELECT count, expires_at FROM usage_counters WHERE key LIKE :k"), {"k": f"%/key/{key_id}/%"}
        ).first()
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


def test_a_long_poll_answers_at_the_runs_end_for_one_request(stack):
    key, record = create_api_key("long-poll", url=stack.db_url)
    key_id = record.id
    with httpx.Client(timeout=90, headers={"x-api-key": key}) as client:
        for _attempt in range(3):  # again if the minute's window turned over meanwhile (the count restarts)
            before, window = limit_count(stack.db_url, key_id)
            r = client.post(
                f"{stack.base}/api",
                json={"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}},
            )
            assert r.status_code == 202, r.text
            task_id, requests, answers = r.json()["task_id"], 1, []
            while True:
                asked = time.monotonic()
                r = client.get(f"{stack.base}/api/{task_id}", params={"wait": 30, "redirect": "false"})
                requests += 1
                answered_at = dt.datetime.now(dt.UTC)
                assert r.status_code == 200, r.text
                body = r.json()
                answers.append((body.get("task_type", "finished"), body.get("stage"), round(time.monotonic() - asked, 2)))
                if body.get("task_type") == "finished":
                    break
                assert body["task_type"] in ("created", "started"), body
                assert requests < 20, answers  # one answer per change, not one per poll interval
            after, window_after = limit_count(stack.db_url, key_id)
            if window_after == window or before == 0:
                break
        assert after - before == requests, (before, after, requests, answers)
    with get_engine(stack.db_url).connect() as conn:
        ended = conn.execute(text("SELECT ended_at FROM tasks WHERE id = :id"), {"id": task_id}).scalar_one()
    ended_at = dt.datetime.fromisoformat(str(ended)).replace(tzinfo=dt.UTC)
    late = (answered_at - ended_at).total_seconds()
    print(f"long poll: {answers}; the finished answer came {late * 1000:.0f} ms after the run recorded its end")
    assert late < 0.3, (late, answers)


def test_an_output_grid_through_the_real_flow(stack, tmp_path):
    """SPEC §5 end to end: NDVI in EPSG:4326 at 0.0001°; the file carries that grid and the values
    that tests/test_output_grid.py checks against rasterio's reproject of numpy's NDVI."""
    import numpy as np

    from tests.test_output_grid import tap_grid

    with Client(stack.base, stack.key) as client:
        task = client.submit(
            "bandmath", view_id=SAMPLE_VIEW_ID, bm_type="NDVI", geometry=GEOMETRY, crs="EPSG:4326", resolution=0.0001
        )
        path = task.wait(timeout=180).download(tmp_path)
    from shapely.geometry import Polygon

    from tests.test_e2e import TRIANGLE

    transform, width, height = tap_grid(Polygon(TRIANGLE).bounds, 0.0001)
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == 4326 and (ds.width, ds.height) == (width, height) and ds.nodata == -9999.0
        assert ds.transform.almost_equals(transform, precision=1e-9)
        values = ds.read(1, masked=True)
    assert values.count() > 1000 and -1 <= values.min() <= values.max() <= 1
    assert np.isfinite(values.compressed()).all()


def test_time_aggregation_through_the_real_flow(stack):
    """SPEC §6 end to end: a month's composite of the one sample scene is that scene, so its
    statistics are the per-scene answer's; an empty month is an errors item with its interval."""
    params = {
        "date_start": "2020-05-01",
        "date_end": "2020-06-30",
        "bm_type": "NDVI",
        "geometry": GEOMETRY,
        "sensors": ["sentinel2"],
    }
    with Client(stack.base, stack.key) as client:
        per_scene = client.submit("mt_stats", params).wait(timeout=180).result
        monthly = client.submit("mt_stats", {**params, "aggregation": {"period": "month", "composite": "max"}})
        answer = monthly.wait(timeout=180).result
        # SPEC §5 per scene: the scene warped onto a requested grid is the month's composite there.
        grid = {"crs": "EPSG:4326", "resolution": 0.0001}
        scene_on_grid = client.submit("mt_stats", {**params, **grid}).wait(timeout=180).result
        june_on_grid = (
            client.submit("mt_stats", {**params, **grid, "aggregation": {"period": "month", "composite": "max"}})
            .wait(timeout=180)
            .result
        )
    [on_grid] = scene_on_grid["result"]
    [june_grid] = june_on_grid["result"]
    assert on_grid["scene_id"] == per_scene["result"][0]["scene_id"] and june_grid["count"] > 1000
    for key in ("average", "median", "min", "max", "std", "q1", "q3", "p10", "p90"):
        assert on_grid[key] == pytest.approx(june_grid[key], rel=1e-12), key
    assert on_grid["average"] != pytest.approx(per_scene["result"][0]["average"], rel=1e-9)  # another grid
    [scene] = per_scene["result"]
    [june] = answer["result"]
    assert june["interval"] == ["2020-06-01", "2020-06-30"] and june["scenes"] == [scene["scene_id"]]
    for key in ("average", "median", "min", "max", "std", "q1", "q3", "p10", "p90"):
        assert june[key] == pytest.approx(scene[key], rel=1e-12), key
    [may] = answer["errors"]
    assert may["interval"] == ["2020-05-01", "2020-05-31"] and may["error"] == "No scene in the interval"
    # The flow ran one step per interval that had scenes.
    api, run_id = stack.service.env["PREFECT_API_URL"], flow_run_of(stack, monthly.id)
    deadline = time.monotonic() + 20  # the server records task runs in batches, within a second or two
    while True:
        runs = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
        names = [t["name"] for t in runs]
        if "publish" in names or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert names.count("stats-2020-06-01") == 1, names
