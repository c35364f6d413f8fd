"""The production topology, on real components: Prefect server and our database on PostgreSQL,
`prefect deploy --all` from prefect.yaml onto a work pool of the warm worker type, two warm workers
(`prefect worker start --type eotasks-warm`), the gateway, and
one moto S3 server holding both the scene COGs and the result bucket (configured by blocks).
20 tasks of all four types at once must all finish with correct outputs, shared by both workers.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
from PIL import Image
from rasterio.io import MemoryFile
from sqlalchemy import text

from eotasks.catalog.demo import demo_fields, generate_demo
from eotasks.catalog.ingest import ingest_folder
from eotasks.catalog.scenes import upsert_scene
from eotasks.db import TaskRecord, create_api_key, get_engine, init_db, session
from eotasks.launcher import Service, free_port, service_env
from tests.conftest import CROP_DIR, SAMPLE_VIEW_ID
from tests.reference import independent_scene_stats, numpy_stats, read_polygon
from tests.stack import CountingProxy, upload_scene
from tests.test_e2e import GEOMETRY, TRIANGLE, check_ndvi_tif

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
FULL_SAMPLE = REPO.parent / "shared" / "data" / "sentinel2-l1c-sample"


@pytest.fixture
def databases():
    suffix = uuid.uuid4().hex[:8]
    names = [f"eotasks_prefect_{suffix}", f"eotasks_app_{suffix}"]
    admin = get_engine(f"{PG}/postgres").execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f"CREATE DATABASE {name}"))
    yield names
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_postgres_workers_s3_twenty_tasks(databases, moto_s3, tmp_path):
    prefect_db, app_db = databases
    app_url = f"{PG}/{app_db}"
    proxy = CountingProxy(moto_s3)
    s3 = boto3.client(
        "s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3.create_bucket(Bucket="scenes")

    # The catalogue (PostgreSQL) with scene COGs on S3: the real sample crop and a demo time series.
    init_db(app_url)
    init_db(app_url)  # safe twice
    local = ingest_folder(CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A", url=app_url)
    local.assets = upload_scene(s3, "scenes", "sample", local.assets)
    upsert_scene(local, app_url)
    demo_local = generate_demo(tmp_path / "demo", s2_scenes=6, landsat_scenes=4, url=app_url)
    for record in demo_local:
        remote = record.model_copy(update={"assets": upload_scene(s3, "scenes", record.view_id.replace("/", "_"), record.assets)})
        upsert_scene(remote, app_url)
    big = None
    if FULL_SAMPLE.is_dir():  # the full 6 MB-per-band sample: what a small AOI costs to read
        big = ingest_folder(FULL_SAMPLE, "sentinel2", view_id="S2/18/S/VG/2020/6/16/0", platform="S2A", url=app_url)
        big.assets = upload_scene(s3, "scenes", "full", {b: big.assets[b] for b in ("B04", "B08")})
        upsert_scene(big, app_url)
    key, _ = create_api_key("production", url=app_url)

    prefect_port, gateway_port = free_port(), free_port()
    env = service_env(
        tmp_path,
        prefect_port,
        {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
            "EOTASKS_DATABASE_URL": app_url,
            "EOTASKS_STORE_BLOCK": "eotasks-results",
            "EOTASKS_ASSETS_CREDENTIALS_BLOCK": "eotasks-assets",
            "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "s3-bucket/eotasks-prefect-results",
            "EOTASKS_CODE_DIR": str(REPO),
            "EOTASKS_PORT": str(gateway_port),
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
        },
    )
    env.pop("PREFECT_LOCAL_STORAGE_PATH")  # results go to the shared block, as across machines
    service = Service(env, tmp_path / "logs")
    try:
        service.start_prefect_server(prefect_port, timeout=180)
        # The operator's command; scene assets are read through the byte-counting proxy.
        setup = subprocess.run(
            [
                sys.executable,
                "-m",
                "eotasks.cli",
                "blocks",
                "setup",
                "--bucket",
                "eotasks-results",
                "--prefix",
                "prod",
                "--endpoint-url",
                moto_s3,
                "--assets-endpoint-url",
                proxy.url,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
            timeout=120,
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "EOTASKS_STORE_BLOCK=eotasks-results" in setup.stdout
        probe = tmp_path / "probe.prefect.yaml"  # the warm-path probe, kept out of the production prefect.yaml
        probe.write_text(
            "name: eotasks-probe\ndeployments:\n  - name: eotasks\n    entrypoint: flows.noop.noop\n"
            "    work_pool:\n      name: eotasks\n"
        )
        for cmd in (
            ["work-pool", "create", "eotasks", "--type", "eotasks-warm"],
            ["--no-prompt", "deploy", "--all"],
            ["--no-prompt", "deploy", "--all", "--prefect-file", str(probe)],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "prefect", *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
            )
            assert done.returncode == 0, done.stdout + done.stderr
        listed = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "ls"], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert all(f"{name}/eotasks" in listed.stdout for name in ("bandmath", "lbe", "jpeg", "mt_stats")), listed.stdout
        assert "monitor/weekly-demo-field" in listed.stdout, listed.stdout
        for name in ("worker-a", "worker-b"):
            service.start(
                name,
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    "eotasks",
                    "--type",
                    "eotasks-warm",
                    "--limit",
                    "4",
                    "--name",
                    name,
                    "--install-policy",
                    "never",
                ],
            )
        forkservers = {name: warm_forkserver_pid(tmp_path / "logs" / f"{name}.log") for name in ("worker-a", "worker-b")}
        service.start_gateway("127.0.0.1", gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        client = httpx.Client(timeout=30)

        def submit(task_type: str, params: dict) -> str:
            r = client.post(f"{base}/api", params={"api_key": key}, json={"type": task_type, "params": params})
            assert r.status_code == 202, r.text
            return r.json()["task_id"]

        def wait(task_id: str, timeout: float = 600) -> httpx.Response:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                r = client.get(f"{base}/api/{task_id}", params={"api_key": key, "redirect": "false"})
                if r.json().get("task_type") not in ("created", "started"):
                    return r
                time.sleep(1)
            raise TimeoutError(task_id)

        bytes_before = dict(proxy.bytes_by_path)
        if big is not None:  # one small-AOI task alone, to count what it reads
            small = {
                "type": "Polygon",
                "coordinates": [[[-75.655, 37.700], [-75.648, 37.700], [-75.648, 37.705], [-75.655, 37.705], [-75.655, 37.700]]],
            }
            first = submit("bandmath", {"view_id": "S2/18/S/VG/2020/6/16/0", "bm_type": "NDVI", "geometry": small})
            assert wait(first).json()["task_type"] == "finished"
            read = sum(v - bytes_before.get(p, 0) for p, v in proxy.bytes_by_path.items() if p.startswith("/scenes/full/"))
            total = sum((FULL_SAMPLE / f"{b}.tif").stat().st_size for b in ("B04", "B08"))
            assert 0 < read < 0.15 * total, (read, total)
            print(f"small AOI read {read} of {total} bytes ({100 * read / total:.1f} %)")

        field = demo_fields()[0]["geometry"]
        tasks = []
        tasks += [
            ("bandmath", submit("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}))
            for _ in range(8)
        ]
        tasks += [
            ("lbe", submit("lbe", {"view_id": SAMPLE_VIEW_ID, "bands": ["B04", "B03", "B02"], "geometry": GEOMETRY}))
            for _ in range(4)
        ]
        tasks += [
            ("jpeg", submit("jpeg", {"view_id": SAMPLE_VIEW_ID, "bm_type": "B04,B03,B02", "geometry": GEOMETRY, "format": "png"}))
            for _ in range(4)
        ]
        tasks += [
            (
                "mt_stats",
                submit(
                    "mt_stats",
                    {
                        "date_start": "2023-01-01",
                        "date_end": "2023-12-31",
                        "bm_type": "NDVI",
                        "geometry": field,
                        "sensors": ["sentinel2l2a", "landsat8"],
                    },
                ),
            )
            for _ in range(4)
        ]
        answers = {task_id: wait(task_id) for _, task_id in tasks}

        expected_rgb = [read_polygon(CROP_DIR / f"{b}.tif", TRIANGLE)[0] for b in ("B04", "B03", "B02")]
        demo_by_view = {r.view_id: r for r in demo_local}
        for task_type, task_id in tasks:
            body = answers[task_id].json()
            if task_type == "mt_stats":
                assert len(body["result"]) == 10 and body["errors"] == [], body["errors"]
                for item in body["result"]:
                    cloud, values = independent_scene_stats(demo_by_view[item["view_id"]], "NDVI", field["coordinates"][0])
                    assert item["cloud"] == pytest.approx(cloud, rel=1e-12, abs=1e-12)
                    assert item["average"] == pytest.approx(numpy_stats(values)["average"], rel=1e-9)
                continue
            assert body["task_type"] == "finished", body
            assert "X-Amz-Signature" in body["result_url"]
            data = httpx.get(body["result_url"]).content
            if task_type == "bandmath":
                check_ndvi_tif(data)
            elif task_type == "lbe":
                with MemoryFile(data) as mem, mem.open() as ds:
                    assert all(np.array_equal(ds.read(i + 1), want) for i, want in enumerate(expected_rgb))
            else:
                assert Image.open(io.BytesIO(data)).mode == "RGBA"
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="eotasks-results", Prefix=f"prod/{task_id}/").get("Contents", [])]
            assert keys, task_id  # results landed in the bucket

        check_scheduled_monitoring(env["PREFECT_API_URL"], s3)
        check_warm_path(env["PREFECT_API_URL"], set(forkservers.values()))

        # Both workers took a share of the runs.
        with session(app_url) as s:
            run_ids = {s.get(TaskRecord, task_id).flow_run_id for _, task_id in tasks}
        shares = {}
        for name in ("worker-a", "worker-b"):
            log = (tmp_path / "logs" / f"{name}.log").read_text()
            shares[name] = {rid for rid in run_ids if re.search(rid, log)}
        assert all(shares.values()), {k: len(v) for k, v in shares.items()}
        assert shares["worker-a"] | shares["worker-b"] == run_ids
        print({k: len(v) for k, v in shares.items()})
        # Every task type ran on PostgreSQL and S3 without importing anything the forkserver had not
        # preloaded (each such import is paid again by every run: eotasks/warm/child.py).
        for name in ("worker-a", "worker-b"):
            late = [line for line in (tmp_path / "logs" / f"{name}.log").read_text().splitlines() if "had not preloaded" in line]
            assert not late, late[:3]
    finally:
        service.stop(grace=5)
        proxy.close()


def warm_forkserver_pid(log: Path, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and (m := re.search(r"warm forkserver ready \(pid (\d+)\)", log.read_text())):
            return int(m.group(1))
        time.sleep(0.5)
    raise TimeoutError(f"no warm forkserver in {log}")


def check_warm_path(api: str, forkservers: set[int]) -> None:
    """A run of the probe flow says where it ran: in a child of one worker's preloaded forkserver."""
    deployment = httpx.get(f"{api}/deployments/name/noop/eotasks").json()
    run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={}).json()
    deadline = time.monotonic() + 120
    line = None
    while time.monotonic() < deadline and line is None:
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run["id"]]}}}).json()
        line = next((entry["message"] for entry in logs if entry["message"].startswith("execution: ")), None)
        time.sleep(0.5)
    assert line is not None, "the probe run did not report where it ran"
    seen = dict(kv.split("=", 1) for kv in line.removeprefix("execution: ").split())
    assert int(seen["ppid"]) in forkservers and seen["warm"].startswith(seen["ppid"] + ":") and seen["preloaded"] == "True", seen


def check_scheduled_monitoring(api: str, s3) -> None:
    """The schedule of prefect.yaml made runs; the earliest, brought forward to now, completes and
    keeps its answer in the bucket."""
    deployment = httpx.get(f"{api}/deployments/name/monitor/weekly-demo-field").json()
    assert deployment["schedules"] and deployment["schedules"][0]["schedule"]["cron"] == "0 6 * * 1"
    deadline = time.monotonic() + 120
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = httpx.post(
            f"{api}/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [deployment["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_ASC",
            },
        ).json()
        time.sleep(2)
    assert runs, "the scheduler made no runs"
    run = runs[0]
    assert run["auto_scheduled"] is True
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    r = httpx.post(
        f"{api}/flow_runs/{run['id']}/set_state",
        json={"state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": now}}, "force": True},
    )
    assert r.status_code in (200, 201), r.text
    deadline = time.monotonic() + 240
    state = None
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run['id']}").json()["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED"):
            break
        time.sleep(2)
    assert state == "COMPLETED", state
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket="eotasks-results", Prefix="prod/monitoring/demo-field/").get("Contents", [])
    ]
    [answer_key] = [k for k in keys if k.endswith(".json")]
    kept = json.loads(s3.get_object(Bucket="eotasks-results", Key=answer_key)["Body"].read())
    assert len(kept["result"]) == 10 and kept["params"]["date_end"] == "2023-12-31"


def test_production_survives_a_killed_worker_and_a_restarted_server(databases, tmp_path):
    """Two warm workers on PostgreSQL: during a burst of 20 mixed tasks, one worker (with its
    forkserver and flow-run children) is killed with SIGKILL and the Prefect server is restarted.
    Every task ends (finished, or failed with a sentence) within the bound; none stays created/started."""
    import os
    import signal

    prefect_db, app_db = databases
    app_url = f"{PG}/{app_db}"
    init_db(app_url)
    ingest_folder(CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A", url=app_url)
    generate_demo(tmp_path / "demo", s2_scenes=6, landsat_scenes=4, url=app_url)
    key, _ = create_api_key("faults", url=app_url)
    prefect_port, gateway_port = free_port(), free_port()
    env = service_env(
        tmp_path,
        prefect_port,
        {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
            "EOTASKS_DATABASE_URL": app_url,
            "EOTASKS_CODE_DIR": str(REPO),
            "EOTASKS_PORT": str(gateway_port),
            "EOTASKS_STORE_URL": str(tmp_path / "results"),
            "EOTASKS_STALE_PENDING_S": "20",
            "EOTASKS_STALE_HEARTBEAT_S": "45",
            "EOTASKS_RATE_LIMIT_PER_MINUTE": "0",
        },
    )
    service = Service(env, tmp_path / "logs")
    bound_s = 300
    try:
        server = service.start_prefect_server(prefect_port, timeout=180)
        for cmd in (
            ["-m", "prefect", "work-pool", "create", "eotasks", "--type", "eotasks-warm"],
            ["-m", "prefect", "--no-prompt", "deploy", "--all"],
            ["-m", "eotasks.cli", "automations", "setup"],
        ):
            done = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
        for name in ("worker-a", "worker-b"):
            service.start(
                name,
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    "eotasks",
                    "--type",
                    "eotasks-warm",
                    "--limit",
                    "4",
                    "--name",
                    name,
                    "--install-policy",
                    "never",
                ],
            )
            warm_forkserver_pid(tmp_path / "logs" / f"{name}.log")
        service.start_gateway("127.0.0.1", gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        client = httpx.Client(timeout=30)
        field = demo_fields()[0]["geometry"]
        bodies = [
            ("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY}),
            ("lbe", {"view_id": SAMPLE_VIEW_ID, "bands": ["B04", "B03", "B02"], "geometry": GEOMETRY}),
            ("jpeg", {"view_id": SAMPLE_VIEW_ID, "bm_type": "B04,B03,B02", "geometry": GEOMETRY, "format": "png"}),
            (
                "mt_stats",
                {
                    "date_start": "2023-01-01",
                    "date_end": "2023-12-31",
                    "bm_type": "NDVI",
                    "geometry": field,
                    "sensors": ["sentinel2l2a", "landsat8"],
                },
            ),
        ]
        tasks = []
        for i in range(20):
            task_type, params = bodies[i % 4]
            r = client.post(f"{base}/api", params={"api_key": key}, json={"type": task_type, "params": params})
            assert r.status_code == 202, r.text
            tasks.append(r.json()["task_id"])

        def kinds() -> dict[str, str]:
            out = {}
            for t in tasks:
                r = client.get(f"{base}/api/{t}", params={"api_key": key, "redirect": "false"})
                out[t] = (
                    "unavailable" if r.status_code == 503 else ("finished" if "result" in r.json() else r.json().get("task_type"))
                )
            return out

        api = env["PREFECT_API_URL"]

        def running_on(worker_name: str, kind: str = "") -> list[str]:
            runs = httpx.post(
                f"{api}/flow_runs/filter", json={"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}, "limit": 200}
            ).json()
            return [
                r["id"]
                for r in runs
                if (r.get("labels") or {}).get("prefect.worker.name") == worker_name and r["name"].startswith(kind)
            ]

        # The kill must strand work: wait until worker-a runs a year of statistics (seconds of work,
        # where a small task may end in the moment between a check and the kill).
        deadline = time.monotonic() + 90
        while not running_on("worker-a", "mt_stats"):
            assert time.monotonic() < deadline, (kinds(), running_on("worker-a"))
            time.sleep(0.05)
        [worker] = [p for name, p in service.procs if name == "worker-a"]
        os.killpg(worker.pid, signal.SIGKILL)
        started = time.monotonic()
        # What the kill stranded: the runs still RUNNING on the dead worker.
        stranded = running_on("worker-a")
        assert stranded, "every run of worker-a ended just before the kill; nothing was stranded"
        server.send_signal(signal.SIGTERM)  # and the Prefect server goes down and comes back on the same database
        server.wait(timeout=60)
        assert client.get(f"{base}/api/{tasks[0]}", params={"api_key": key}).status_code in (503, 303, 200)
        service.start_prefect_server(prefect_port, timeout=180)
        seen = {}
        while time.monotonic() - started < bound_s:
            seen = kinds()
            if all(k in ("finished", "failed", "cancelled") for k in seen.values()):
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
        assert all(k in ("finished", "failed") for k in seen.values()), seen
        finished = [t for t, k in seen.items() if k == "finished"]
        for t, k in seen.items():
            if k == "failed":  # only a run stranded three times may fail, and it says so; never "internal error"
                body = client.get(f"{base}/api/{t}", params={"api_key": key}).json()
                assert body["error"].endswith("please submit it again"), body
        assert len(finished) >= 18, seen
        # The runs the kill stranded were brought back by the automations, not ended some other way.
        resubmitted = [
            r
            for r in stranded
            if any(st["name"] == "Resubmitted" for st in httpx.get(f"{api}/flow_run_states/", params={"flow_run_id": r}).json())
        ]
        assert resubmitted, stranded
        for t in finished:  # and what they finished with is real: a file to download, or statistics
            r = client.get(f"{base}/api/{t}", params={"api_key": key})
            if r.status_code == 303:
                assert client.get(r.headers["Location"]).status_code == 200
            else:
                assert len(r.json()["result"]) == 10 and r.json()["errors"] == [], r.text
        print(
            f"all 20 tasks ended {elapsed:.0f} s after the faults: {len(finished)} finished, {len(resubmitted)} of "
            f"{len(stranded)} stranded runs resubmitted"
        )
    finally:
        service.stop(grace=5)
