"""The gateway's contract without Prefect: a fake runs layer stands in for the server."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient

from eotasks.db import create_api_key, init_db, revoke_api_key
from gateway.app import create_app
from gateway.runs import NotAvailable, RunStatus

VIEW = "S2/18/S/VG/2020/6/15/0"
POLY = {"type": "Polygon", "coordinates": [[[-75.65, 37.65], [-75.60, 37.64], [-75.62, 37.70], [-75.65, 37.65]]]}


class FakeRuns:
    def __init__(self):
        self.created: list[dict] = []
        self.cancelled: list[str] = []
        self.state = "RUNNING"

    async def start(self):
        pass

    async def stop(self):
        pass

    async def create(self, task_type, parameters, task_id, idempotency_key, labels=None):
        if task_type not in ("bandmath", "lbe", "jpeg"):
            raise NotAvailable(task_type)
        self.created.append(parameters)
        self.labels = labels
        return uuid.uuid4()

    async def status(self, flow_run_id, with_result=True, with_stage=True):
        return RunStatus(self.state, "Scene with given ID does not exist" if self.state == "FAILED" else None, "crop")

    async def states(self, ids):
        return dict.fromkeys(ids, self.state)

    async def cancel(self, flow_run_id):
        self.cancelled.append(flow_run_id)


@pytest.fixture(scope="module")
def runs():
    return FakeRuns()


@pytest.fixture(scope="module")
def client(runs):
    """The contract's tests share a key; the rate limit has a test of its own (with its own app)."""
    from eotasks.usage import RateLimit

    init_db()
    app = create_app(runs)
    app.state.rate_limit = RateLimit(0)  # unlimited: ~120 requests here must not meet the per-minute limit
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def key():
    return create_api_key("gateway-test")[0]


@pytest.fixture(scope="module")
def other_key():
    return create_api_key("gateway-other")[0]


def post(client, key, body, **kw):
    return client.post("/api", params={"api_key": key}, json=body, **kw)


def good(**params):
    return {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "geometry": POLY, **params}}


def test_submit_and_poll(client, key, runs):
    r = post(client, key, good(reference="field 7"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "authentication" and body["task_timeout"] == 172800
    assert uuid.UUID(body["task_id"]).version == 4 and r.headers["X-Request-Id"] == body["req_id"]
    assert runs.created[-1]["params"]["bm_type"] == "NDVI"
    g = client.get(f"/api/{body['task_id']}", headers={"x-api-key": key})
    assert g.status_code == 200
    assert g.json() == {
        "task_type": "started",
        "status": "started",
        "stage": "crop",
        "reference": "field 7",
        "token": g.json()["token"],
        "result_url": "",
        "client_id": 0,
        "download_id": 0,
        "task_id": body["task_id"],
    }
    assert key not in g.text and g.json()["token"].startswith("apk.")
    # The gdw path form serves the same.
    assert client.get(f"/api/gdw/api/{body['task_id']}", params={"api_key": key}).status_code == 200


def test_failed_task_reports_stage_and_message(client, key, runs):
    task_id = post(client, key, good()).json()["task_id"]
    runs.state = "FAILED"
    try:
        g = client.get(f"/api/{task_id}", params={"api_key": key}).json()
    finally:
        runs.state = "RUNNING"
    assert g == {
        "task_type": "failed",
        "status": "failed",
        "stage": "crop",
        "error": "Scene with given ID does not exist",
        "task_id": task_id,
    }


def test_idempotency_key(client, key, runs):
    h = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    a = post(client, key, good(), headers=h)
    n = len(runs.created)
    b = post(client, key, good(), headers=h)
    assert a.status_code == b.status_code == 202 and a.json()["task_id"] == b.json()["task_id"]
    assert len(runs.created) == n  # no second run
    c = post(client, key, good(bm_type="NDWI"), headers=h)
    assert c.status_code == 409 and c.json()["status"] is False


def test_another_keys_task_is_404(client, key, other_key):
    task_id = post(client, key, good()).json()["task_id"]
    r = client.get(f"/api/{task_id}", params={"api_key": other_key})
    assert r.status_code == 404 and r.json()["error"] == "Task not found"
    assert client.delete(f"/api/{task_id}", params={"api_key": other_key}).status_code == 404


def test_cancel_and_list(client, key, runs):
    task_id = post(client, key, good(reference="to cancel")).json()["task_id"]
    r = client.delete(f"/api/{task_id}", params={"api_key": key})
    assert r.status_code == 202 and r.json()["task_type"] == "cancelled" and runs.cancelled  # SPEC §7
    # The run still says RUNNING (its engine has not noticed yet): the task is cancelled all the same,
    # for every answer from now on, and cannot be cancelled twice.
    assert runs.state == "RUNNING"
    again = client.get(f"/api/{task_id}", params={"api_key": key}).json()
    assert again["task_type"] == "cancelled" and again["error"] == "The task was cancelled"
    assert client.delete(f"/api/{task_id}", params={"api_key": key}).status_code == 409
    listing = client.get("/api", params={"api_key": key, "limit": 2}).json()
    assert listing["meta"]["found"] >= 3 and len(listing["tasks"]) == 2
    assert listing["tasks"][0]["task_id"] == task_id  # newest first


def test_revoked_key_is_403(client):
    k, _ = create_api_key("to-revoke")
    assert revoke_api_key("to-revoke") == 1
    r = post(client, k, good())
    assert r.status_code == 403 and "revoked" in r.json()["error"]


def test_cropper_ref_round_trip(client, key):
    feature = {"type": "Feature", "properties": {}, "geometry": POLY}
    a = client.post("/api/render/cropper/", params={"api_key": key}, json=feature).json()
    b = client.post("/api/render/cropper/", params={"api_key": key}, json=feature).json()
    assert a == b and len(a["cropper_ref"]) == 32
    r = post(client, key, {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "cropper_ref": a["cropper_ref"]}})
    assert r.status_code == 202


def test_signed_download_urls_are_checked(client):
    r = client.get("/api/download/x/y.tif", params={"expires": 9999999999, "signature": "0" * 64})
    assert r.status_code == 403
    r = client.get("/api/download/../../etc/passwd", params={"expires": 9999999999, "signature": "0" * 64})
    assert r.status_code in (403, 404)


def _balanced(leaf: str, depth: int) -> str:
    return leaf if depth == 0 else f"({_balanced(leaf, depth - 1)}+{_balanced(leaf, depth - 1)})"


# 256 EVIs in a balanced tree: shallow and under 2,000 characters, but ~4,600 terms once expanded.
BALANCED_EVI_BOMB = _balanced("EVI", 8)

BAD_REQUESTS = [
    # (description, body or raw text, expected status, field named in details)
    ("malformed JSON", "{not json", 400, None),
    ("body is a list", [1, 2], 400, None),
    ("unknown type", {"type": "nope", "params": {}}, 400, "type"),
    ("missing type", {"params": {}}, 400, "type"),
    ("missing params", {"type": "bandmath"}, 400, "params"),
    ("params not an object", {"type": "bandmath", "params": 3}, 400, "params"),
    ("unknown top-level field", {**good(), "colour": 1}, 400, "colour"),
    ("unknown parameter", good(colour="red"), 400, "params.colour"),
    ("missing view_id", {"type": "bandmath", "params": {"bm_type": "NDVI"}}, 400, "params.view_id"),
    ("view_id malformed", good(view_id="S2/garbage"), 400, "params.view_id"),
    ("view_id bad date", good(view_id="S2/18/S/VG/2020/2/31/0"), 400, "params.view_id"),
    ("view_id wrong type", good(view_id=42), 400, "params.view_id"),
    ("missing bm_type", {"type": "bandmath", "params": {"view_id": VIEW}}, 400, "params.bm_type"),
    ("empty bm_type", good(bm_type=" "), 400, "params.bm_type"),
    ("unknown band", good(bm_type="B99 + B04"), 400, "params.bm_type"),
    ("unknown alias", good(bm_type="NOTANINDEX"), 400, "params.bm_type"),
    ("syntax error", good(bm_type="(B04 - B08"), 400, "params.bm_type"),
    ("dunder name", good(bm_type="__import__"), 400, "params.bm_type"),
    ("deep nesting", good(bm_type="(" * 300 + "B04" + ")" * 300), 400, "params.bm_type"),
    ("unknown function", good(bm_type="system(B04)"), 400, "params.bm_type"),
    ("landsat band on S2", good(bm_type="QA_PIXEL"), 400, "params.bm_type"),
    (
        "bbox three numbers",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "bbox": [1, 2, 3]}},
        400,
        "params.bbox",
    ),
    (
        "bbox min > max",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "bbox": [2, 2, 1, 3]}},
        400,
        "params.bbox",
    ),
    (
        "bbox out of range",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "bbox": [-200, 0, 1, 1]}},
        400,
        "params.bbox",
    ),
    (
        "bbox strings",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "bbox": ["a", 0, 1, 1]}},
        400,
        "params.bbox[0]",
    ),
    ("bbox and geometry", good(bbox=[-75.65, 37.64, -75.6, 37.7]), 400, "params.geometry"),
    ("geometry is a Feature", good(geometry={"type": "Feature", "geometry": POLY}), 400, "params.geometry"),
    ("geometry is a Point", good(geometry={"type": "Point", "coordinates": [0, 0]}), 400, "params.geometry"),
    (
        "geometry self-intersecting",
        good(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),
        400,
        "params.geometry",
    ),
    (
        "geometry ring not closed",
        good(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0]]]}),
        400,
        "params.geometry",
    ),
    ("geometry garbage coordinates", good(geometry={"type": "Polygon", "coordinates": "x"}), 400, "params.geometry"),
    (
        "AOI too large",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "bbox": [-80, 30, -70, 40]}},
        400,
        "params.bbox",
    ),
    (
        "cropper_ref malformed",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "cropper_ref": "../x"}},
        400,
        "params.cropper_ref",
    ),
    ("reference too long", good(reference="x" * 300), 400, "params.reference"),
    ("name_alias too long", good(name_alias="x" * 300), 400, "params.name_alias"),
    ("callback to loopback", {**good(), "callback_url": "http://127.0.0.1:9/hook"}, 400, "callback_url"),
    ("callback not http", {**good(), "callback_url": "file:///etc/passwd"}, 400, "callback_url"),
    (
        "mt_stats not available yet",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI", "geometry": POLY},
        },
        400,
        "type",
    ),
    (
        "lbe unknown band",
        {"type": "lbe", "params": {"view_id": VIEW, "bands": ["B04", "B99"], "geometry": POLY}},
        400,
        "params.bands",
    ),
    (
        "lbe landsat band on S2",
        {"type": "lbe", "params": {"view_id": VIEW, "bands": ["QA_PIXEL"], "geometry": POLY}},
        400,
        "params.bands",
    ),
    ("lbe empty bands", {"type": "lbe", "params": {"view_id": VIEW, "bands": [], "geometry": POLY}}, 400, "params.bands"),
    ("lbe without AOI", {"type": "lbe", "params": {"view_id": VIEW, "bands": ["B04"]}}, 400, "params.geometry"),
    (
        "jpeg bad view_id and bad expression",
        {"type": "jpeg", "params": {"view_id": "bad", "bm_type": "(B04"}},
        400,
        "params.bm_type",
    ),
    (
        "bandmath bad view_id and bad expression",
        {"type": "bandmath", "params": {"view_id": "bad", "bm_type": "B04 +"}},
        400,
        "params.bm_type",
    ),
    # Were 500s or accepted bombs: a chain deeper than Python's stack, aliases expanding past the limit.
    ("a 1999-character sum", good(bm_type="+".join(["1"] * 1000)), 400, "params.bm_type"),
    ("alias chain bomb", good(bm_type="+".join(["EVI"] * 499)), 400, "params.bm_type"),
    ("balanced alias bomb", good(bm_type=BALANCED_EVI_BOMB), 400, "params.bm_type"),
    (
        "unknown cropper_ref",
        {"type": "bandmath", "params": {"view_id": VIEW, "bm_type": "NDVI", "cropper_ref": "0" * 32}},
        400,
        "params.cropper_ref",
    ),
    (
        "fields not a collection",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI", "fields": {"type": "Feature"}},
        },
        400,
        "params.fields",
    ),
    (
        "fields bad second feature",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "fields": {
                    "type": "FeatureCollection",
                    "features": [
                        {"type": "Feature", "id": "a", "geometry": POLY},
                        {"type": "Feature", "id": "b", "geometry": {"type": "Point", "coordinates": [0, 0]}},
                    ],
                },
            },
        },
        400,
        "params.fields[1]",
    ),
    (
        "fields repeated id",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "fields": {
                    "type": "FeatureCollection",
                    "features": [
                        {"type": "Feature", "id": 7, "geometry": POLY},
                        {"type": "Feature", "properties": {"id": 7}, "geometry": POLY},
                    ],
                },
            },
        },
        400,
        "params.fields[1]",
    ),
    (
        "fields and geometry",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "geometry": POLY,
                "fields": {"type": "FeatureCollection", "features": [{"type": "Feature", "id": 1, "geometry": POLY}]},
            },
        },
        400,
        "params.fields",
    ),
    (
        "histogram edges not increasing",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "geometry": POLY,
                "histogram": {"edges": [0, 0.5, 0.2]},
            },
        },
        400,
        "params.histogram.edges",
    ),
    (
        "percentile over 100",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "geometry": POLY,
                "percentiles": [50, 101],
            },
        },
        400,
        "params.percentiles",
    ),
    (
        "jpeg unknown colormap",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "colormap": "rainbowz"}},
        400,
        "params.colormap",
    ),
    (
        "jpeg levels not finite",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "colormap": "RdYlGn", "levels": "-inf,inf"}},
        400,
        "params.levels",
    ),
    (
        "jpeg levels nan",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "colormap": "RdYlGn", "levels": "nan,1"}},
        400,
        "params.levels",
    ),
    (
        "mt_stats bad expression without sensors",
        {"type": "mt_stats", "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "((", "geometry": POLY}},
        400,
        "params.bm_type",
    ),
    (
        "mt_stats unknown name without sensors",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": ["NDVI", "FOO"], "geometry": POLY},
        },
        400,
        "params.bm_type",
    ),
    (
        "jpeg levels one number",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "levels": "1"}},
        400,
        "params.levels",
    ),
    (
        "jpeg levels not numbers",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "levels": "a,b"}},
        400,
        "params.levels",
    ),
    (
        "jpeg levels min == max",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "levels": "0.5,0.5"}},
        400,
        "params.levels",
    ),
    ("jpeg px_size 0", {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "px_size": 0}}, 400, "params.px_size"),
    (
        "jpeg px_size negative",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "px_size": -10}},
        400,
        "params.px_size",
    ),
    (
        "jpeg px_size absurdly small",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "px_size": 0.01, "geometry": POLY}},
        400,
        "params.px_size",
    ),
    (
        "jpeg unknown format",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "format": "gif"}},
        400,
        "params.format",
    ),
    (
        "jpeg unknown resample",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "resample": "sinc"}},
        400,
        "params.resample",
    ),
    (
        "jpeg colors_limit 1",
        {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "colors_limit": 1}},
        400,
        "params.colors_limit",
    ),
    (
        "lbe duplicated bands",
        {"type": "lbe", "params": {"view_id": VIEW, "bands": ["B04", "b4"], "geometry": POLY}},
        400,
        "params.bands",
    ),
    ("jpeg two expressions", {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "B04,B03"}}, 400, "params.bm_type"),
    ("jpeg bad levels", {"type": "jpeg", "params": {"view_id": VIEW, "bm_type": "NDVI", "levels": "1,0"}}, 400, "params.levels"),
    (
        "mt_stats end before start",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-05-01", "date_end": "2023-01-01", "bm_type": "NDVI", "geometry": POLY},
        },
        400,
        "params.date_end",
    ),
    (
        "mt_stats unknown sensor",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "sensors": ["hubble"],
                "geometry": POLY,
            },
        },
        400,
        "params.sensors",
    ),
    (
        "mt_stats limit 0",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI", "limit": 0, "geometry": POLY},
        },
        400,
        "params.limit",
    ),
    (
        "mt_stats span over the limit",
        {
            "type": "mt_stats",
            "params": {"date_start": "2022-01-01", "date_end": "2023-06-01", "bm_type": "NDVI", "geometry": POLY},
        },
        400,
        "params.date_end",
    ),
    (
        "mt_stats too many expressions",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": ["NDVI"] * 11, "geometry": POLY},
        },
        400,
        "params.bm_type",
    ),
    (
        "mt_stats two expressions in one item",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI, EVI",
                "sensors": ["S2L2A"],
                "geometry": POLY,
            },
        },
        400,
        "params.bm_type",
    ),
    (
        "mt_stats bad date",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-02-30", "date_end": "2023-03-01", "bm_type": "NDVI", "geometry": POLY},
        },
        400,
        "params.date_start",
    ),
    (
        "mt_stats cloud -1",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "max_cloud_cover_in_aoi": -1,
                "geometry": POLY,
            },
        },
        400,
        "params.max_cloud_cover_in_aoi",
    ),
    (
        "mt_stats masking level 5",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "cloud_masking_level": 5,
                "geometry": POLY,
            },
        },
        400,
        "params.cloud_masking_level",
    ),
    (
        "mt_stats without AOI",
        {"type": "mt_stats", "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI"}},
        400,
        "params.geometry",
    ),
    (
        "mt_stats cloud 101",
        {
            "type": "mt_stats",
            "params": {
                "date_start": "2023-01-01",
                "date_end": "2023-02-01",
                "bm_type": "NDVI",
                "max_cloud_cover_in_aoi": 101,
                "geometry": POLY,
            },
        },
        400,
        "params.max_cloud_cover_in_aoi",
    ),
    # An expression that reads no band has no pixels to compute over (it failed later, after retries).
    ("bandmath expression without a band", good(bm_type="1"), 400, "params.bm_type"),
    ("bandmath second expression without a band", good(bm_type="NDVI, 2 * 3"), 400, "params.bm_type"),
    (
        "jpeg expression without a band, bad view_id",
        {"type": "jpeg", "params": {"view_id": "bad", "bm_type": "1"}},
        400,
        "params.bm_type",
    ),
    (
        "mt_stats expression without a band",
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "2 * 3", "geometry": POLY},
        },
        400,
        "params.bm_type",
    ),
    (
        "geometry with booleans for coordinates",
        good(geometry={"type": "Polygon", "coordinates": [[[True, 0], [1, 1], [1, 0], [True, 0]]]}),
        400,
        "params.geometry",
    ),
    (
        "geometry over the vertex limit",
        good(
            geometry={
                "type": "Polygon",
                "coordinates": [
                    [[-75.65 + 0.05 * i / 20_001, 37.65 + 0.0001 * (i % 2)] for i in range(20_001)]
                    + [[-75.60, 37.70], [-75.65, 37.65]]
                ],
            }
        ),
        400,
        "params.geometry",
    ),
]


@pytest.mark.parametrize("what, body, code, field", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_are_clear_400s(client, key, what, body, code, field):
    if isinstance(body, str):
        r = client.post("/api", params={"api_key": key}, content=body, headers={"Content-Type": "application/json"})
    else:
        r = post(client, key, body)
    assert r.status_code == code, r.text
    payload = r.json()
    assert payload["status"] is False and payload["error"] and "Traceback" not in r.text
    if field:
        assert field in [d["field"] for d in payload["details"]], payload


def test_key_errors(client, key):
    assert post(client, None, good()).status_code == 401
    r = client.post("/api", json=good())
    assert r.status_code == 401 and r.json()["details"][0]["field"] == "api_key"
    assert post(client, "apk." + "0" * 64, good()).status_code == 403
    assert client.get("/api/not-a-uuid", params={"api_key": key}).status_code == 404
    assert client.get(f"/api/{uuid.uuid4()}", params={"api_key": key}).status_code == 404


def test_body_over_limit_is_413(client, key):
    r = client.post(
        "/api", params={"api_key": key}, content=b"{" + b" " * 2_000_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["status"] is False


def test_rate_limit_is_429_with_retry_after(runs):
    from eotasks.usage import RateLimit

    app = create_app(runs)
    app.state.rate_limit = RateLimit(3)
    k, _ = create_api_key("rate-limited")
    with TestClient(app) as c:
        codes = [c.get("/api", params={"api_key": k}).status_code for _ in range(5)]
        r = c.get("/api", params={"api_key": k})
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_openapi_documents_the_request_models(client):
    spec = client.get("/openapi.json").json()
    assert "BandmathParams" in spec["components"]["schemas"] and "/api/{task_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200


@pytest.fixture(scope="module")
def demo_scenes(tmp_path_factory):
    from eotasks.catalog.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("gw-demo"), s2_scenes=4, landsat_scenes=3)


def test_search_routes_filter_sort_and_page(client, key, demo_scenes):
    from eotasks.catalog.demo import demo_fields

    field = demo_fields()[0]["geometry"]
    body = {"search": {"date": {"from": "2023-01-01", "to": "2023-12-31"}, "shape": field}, "page": 1, "limit": 3}
    r = client.post("/api/lms/search/v2/sentinel2l2a", params={"api_key": key}, json=body)
    assert r.status_code == 200, r.text
    page1 = r.json()
    assert page1["meta"] == {"page": 1, "found": 4, "limit": 3}
    dates = [x["date"] for x in page1["results"]]
    assert dates == sorted(dates, reverse=True) and all(x["satelliteName"] == "sentinel2l2a" for x in page1["results"])
    assert {"sceneID", "view_id", "date", "cloudCoverage", "satelliteName", "dataGeometry"} <= set(page1["results"][0])
    page2 = client.post("/api/lms/search/v2/S2L2A", params={"api_key": key}, json={**body, "page": 2}).json()
    assert len(page2["results"]) == 1 and page2["results"][0]["date"] < dates[-1]
    both = client.post(
        "/api/lms/search/v2",
        params={"api_key": key},
        json={
            "search": {"satellites": ["sentinel2l2a", "L8"], "date": ["2023-01-05", {"from": "2023-01-10", "to": "2023-01-10"}]},
            "sort": {"date": "asc"},
        },
    ).json()
    assert [x["date"] for x in both["results"]] == ["2023-01-05", "2023-01-10"]
    clear = client.post(
        "/api/lms/search/v2", params={"api_key": key}, json={"search": {"cloudCoverage": {"from": 0, "to": 0}}}
    ).json()
    assert all(x["cloudCoverage"] == 0 for x in clear["results"])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"search": {"date": {"from": "2023-13-01"}}}, "search.date"),
        ({"search": {"cloudCoverage": {"from": -1}}}, "search.cloudCoverage.from"),
        ({"search": {"shape": {"type": "Point", "coordinates": [0, 0]}}}, "search.shape"),
        ({"search": {"satellites": ["hubble"]}}, "search.satellites"),
        ({"page": 0}, "page"),
        ({"sort": {"cloud": "asc"}}, "sort"),
        # 1,200 dates were a 500 (a query too deep for the database): now a 400 naming the field.
        ({"search": {"date": [f"2023-01-{1 + i % 28:02d}" for i in range(1200)]}}, "search.date"),
        ({"search": {"satellites": ["sentinel2l2a"] * 60}}, "search.satellites"),
    ],
)
def test_search_bad_input(client, key, body, field):
    r = client.post("/api/lms/search/v2", params={"api_key": key}, json=body)
    assert r.status_code == 400 and any(d["field"].startswith(field) for d in r.json()["details"]), r.text


def test_search_unknown_dataset_is_404(client, key):
    assert client.post("/api/lms/search/v2/hubble", params={"api_key": key}, json={}).status_code == 404


def test_a_non_ascii_signature_is_403_not_500(client):
    r = client.get("/api/download/x/y.tif", params={"expires": 9999999999, "signature": "é" * 64})
    assert r.status_code == 403 and r.json()["status"] is False


def test_concurrent_idempotent_posts_make_one_task(client, runs):
    """Two concurrent POSTs with one Idempotency-Key: one task, one run; another body is a 409."""
    import concurrent.futures as cf

    key = create_api_key("idempotency-race")[0]  # a fresh rate-limit bucket

    h = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    n = len(runs.created)
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(client, key, good(), headers=h), range(8)))
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert len(runs.created) == n + 1
    h2 = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    with cf.ThreadPoolExecutor(8) as pool:
        mixed = list(pool.map(lambda i: post(client, key, good(bm_type="NDVI" if i % 2 else "NDWI"), headers=h2), range(8)))
    codes = sorted(a.status_code for a in mixed)
    assert set(codes) == {202, 409} and len({a.json()["task_id"] for a in mixed if a.status_code == 202}) == 1, codes


def test_orchestrator_down_is_503_with_retry_after(client, key):
    """A real gateway whose Prefect API is not listening: POST and GET answer 503, not 500, and the
    reserved task is given up (the same Idempotency-Key works once the orchestrator is back)."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from eotasks.launcher import free_port
    from gateway.runs import PrefectRuns

    saved = prefect.context.GLOBAL_SETTINGS_CONTEXT  # the gateway makes its process's client answer promptly
    with (
        temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}),
        TestClient(create_app(PrefectRuns())) as down,
    ):
        h = {"Idempotency-Key": f"down-{uuid.uuid4()}"}
        r = post(down, key, good(), headers=h)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5" and "orchestrator" in r.json()["error"] and "Traceback" not in r.text
    prefect.context.GLOBAL_SETTINGS_CONTEXT = saved
    from sqlmodel import select

    from eotasks.db import TaskRecord, session

    with session() as s:
        assert s.exec(select(TaskRecord).where(TaskRecord.idempotency_key == h["Idempotency-Key"])).first() is None


BIG_VIEW = "S2/32/U/MU/2023/6/1/0"  # a full 110 km tile in the catalogue (no files needed to count)


@pytest.fixture(scope="module")
def big_scene(client):
    from eotasks.catalog.scenes import asset_spec, upsert_scene
    from eotasks.db import SceneRecord
    from eotasks.raster.aoi import footprint_geojson

    bounds = (300000.0, 5890200.0, 409800.0, 6000000.0)  # 10980 x 10980 px at 10 m, UTM 32N
    assets = {
        b: asset_spec(f"/nonexistent/{b}.tif", r, 1e-4, 0.0, 0, True)
        for b, r in {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B11": 20}.items()
    }
    upsert_scene(
        SceneRecord(
            view_id=BIG_VIEW,
            scene_id="S2A_tile_20230601_32UMU_0",
            sensor="sentinel2",
            date=dt.date(2023, 6, 1),
            crs="EPSG:32632",
            footprint=footprint_geojson(bounds, "EPSG:32632"),
            assets=assets,
        )
    )
    return BIG_VIEW


def _corners(d: float = 0.01, clockwise_second: bool = False) -> dict:
    from pyproj import Transformer

    t = Transformer.from_crs(32632, 4326, always_xy=True)
    (x0, y0), (x1, y1) = t.transform(301000, 5891200), t.transform(408000, 5998800)

    def square(x, y, cw):
        ring = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
        return [ring[::-1] if cw else ring]

    return {"type": "MultiPolygon", "coordinates": [square(x0, y0, False), square(x1 - d, y1 - d, clockwise_second)]}


def test_opposite_corner_squares_are_refused_by_the_read_budget(client, key, big_scene, runs):
    """Two 1 km squares at opposite corners: tiny in area, but the output covers the whole tile."""
    n = len(runs.created)
    body = {"type": "lbe", "params": {"view_id": big_scene, "bands": ["B02", "B03", "B04", "B08"], "geometry": _corners()}}
    r = post(client, key, body)
    assert r.status_code == 400, r.text
    assert "300,000,000" in r.json()["error"] and "params.geometry" in [d["field"] for d in r.json()["details"]]
    assert len(runs.created) == n  # refused before any run was created
    # The same squares as two tasks are fine: the budget counts what is read, not the area.
    one = {
        "type": "lbe",
        "params": {
            "view_id": big_scene,
            "bands": ["B02", "B03", "B04", "B08"],
            "geometry": {"type": "Polygon", "coordinates": _corners()["coordinates"][0]},
        },
    }
    assert post(client, key, one).status_code == 202


def test_opposite_windings_do_not_slip_under_the_area_limit(client, key):
    big = [[[-100, 40], [-99, 40], [-99, 41], [-100, 41], [-100, 40]]]  # ~9,400 km2 each
    other = [[[-97, 40], [-97, 41], [-96, 41], [-96, 40], [-97, 40]]]  # wound the other way
    r = post(client, key, good(geometry={"type": "MultiPolygon", "coordinates": [big, other]}))
    assert r.status_code == 400 and "km²" in r.json()["error"], r.text


def test_jpeg_picture_size_is_checked_before_any_read(client, key, big_scene, runs):
    n = len(runs.created)
    r = post(client, key, {"type": "jpeg", "params": {"view_id": big_scene, "bm_type": "B04"}})  # whole tile at 10 m: 120 Mpx
    assert r.status_code == 400 and "params.px_size" in [d["field"] for d in r.json()["details"]], r.text
    assert len(runs.created) == n
    ok = post(client, key, {"type": "jpeg", "params": {"view_id": big_scene, "bm_type": "B04", "px_size": 60}})
    assert ok.status_code == 202, ok.text


def test_time_series_budget_counts_each_part():
    from eotasks.budget import check_time_series_task
    from eotasks.errors import UserError
    from eotasks.models import MtStatsParams

    params = MtStatsParams(
        date_start="2023-01-01", date_end="2023-12-31", bm_type="NDVI", geometry=_corners(), sensors=["sentinel2l2a"]
    )
    check_time_series_task(params, params.aoi_shape())  # two small windows: well within the budget
    wide = MtStatsParams(
        date_start="2023-01-01",
        date_end="2023-12-31",
        bm_type=["NDVI", "NDWI", "NDMI", "EVI"],
        bbox=[8.0, 53.0, 9.3, 54.0],
        sensors=["sentinel2l2a"],
    )  # under the area limit, but 4 x 10 m bands
    with pytest.raises(UserError) as info:
        check_time_series_task(wide, wide.aoi_shape())
    assert info.value.field == "params.bbox"


def thin_strips(n: int = 60, span: float = 170.0) -> dict:
    """A 7 KB MultiPolygon of very thin strips across 170 degrees of longitude: tiny in area, but
    millions of vertices once densified for reprojection (it took 15.8 s and 1.7 GB to accept)."""
    strips = []
    for i in range(n):
        lat = -60 + i * 2.0
        strips.append([[[-85.0, lat], [-85.0 + span, lat], [-85.0 + span, lat + 1e-6], [-85.0, lat + 1e-6], [-85.0, lat]]])
    return {"type": "MultiPolygon", "coordinates": strips}


def test_a_thin_strip_multipolygon_is_refused_at_once(client, key):
    import time

    body = good(geometry=thin_strips())
    start = time.monotonic()
    r = post(client, key, body)
    elapsed = time.monotonic() - start
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.geometry", r.text
    assert "densified" in r.json()["error"] and elapsed < 1.0, (elapsed, r.text)
    mt = {
        "type": "mt_stats",
        "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI", "geometry": thin_strips()},
    }
    assert post(client, key, mt).status_code == 400
    fields = {"type": "FeatureCollection", "features": [{"type": "Feature", "id": 1, "geometry": thin_strips()}]}
    r = post(
        client,
        key,
        {
            "type": "mt_stats",
            "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI", "fields": fields},
        },
    )
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "params.fields[0]"


TEMPLATE = {"__prefect_kind": "jinja", "template": "{{ 'x' * 30000000 }}"}
VARIABLE = {"__prefect_kind": "workspace_variable", "variable_name": "secret"}


def contains_prefect_kind(value) -> bool:
    if isinstance(value, dict):
        return any(str(k).startswith("__prefect") or contains_prefect_kind(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_prefect_kind(v) for v in value)
    return False


def test_client_json_reaches_prefect_only_as_plain_data_we_built(client, key, runs):
    """Prefect renders any {"__prefect_kind": ...} in a run's parameters: nothing of the client's
    dicts may get there, only the GeoJSON we rebuilt."""
    geometry = {**POLY, "extra": TEMPLATE, "bbox": [-75.65, 37.64, -75.6, 37.7], "crs": VARIABLE}
    r = post(client, key, good(geometry=geometry))
    assert r.status_code == 202, r.text
    sent = runs.created[-1]["params"]["geometry"]
    assert sent == {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in POLY["coordinates"][0]]]}
    fields = {
        "type": "FeatureCollection",
        "extra": TEMPLATE,
        "features": [
            {
                "type": "Feature",
                "id": "a",
                "properties": {"name": TEMPLATE, "other": VARIABLE},
                "geometry": {**POLY, "x": TEMPLATE},
                "junk": VARIABLE,
            },
            {"type": "Feature", "properties": {"id": 7, "t": TEMPLATE}, "geometry": POLY},
        ],
    }
    body = {
        "type": "mt_stats",
        "params": {"date_start": "2023-01-01", "date_end": "2023-02-01", "bm_type": "NDVI", "fields": fields},
    }
    from eotasks.models import MtStatsParams

    params = MtStatsParams.model_validate(body["params"]).model_dump(mode="json", exclude_none=True)
    assert not contains_prefect_kind(params)
    assert params["fields"] == {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "id": "a", "geometry": sent}, {"type": "Feature", "id": 7, "geometry": sent}],
    }
    assert all(not contains_prefect_kind(p) for p in runs.created)


def test_an_abandoned_reservation_fails_and_an_idempotent_retry_takes_it_over(client, key, runs):
    """The row of a task whose run was never linked (its gateway died, or the database failed between
    the two writes) answers failed once stale, and a retry with its Idempotency-Key is a new task."""
    import hashlib
    import json

    from eotasks.db import TaskRecord, find_api_key, session

    body = good(reference="abandoned")
    idem = f"abandoned-{uuid.uuid4()}"
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    stale = TaskRecord(
        id=str(uuid.uuid4()),
        api_key_id=find_api_key(key).id,
        type="bandmath",
        req_id=str(uuid.uuid4()),
        idempotency_key=idem,
        body_hash=digest,
        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
    )
    with session() as s:
        s.add(stale)
        s.commit()
    g = client.get(f"/api/{stale.id}", params={"api_key": key}).json()
    assert g["task_type"] == "failed" and "could not be created" in g["error"]
    retried = post(client, key, body, headers={"Idempotency-Key": idem})
    assert retried.status_code == 202 and retried.json()["task_id"] != stale.id
    assert runs.created[-1]["task_id"] == retried.json()["task_id"]


def test_a_task_cancelled_while_queued_gets_its_callback(client, key, runs, monkeypatch):
    """No engine runs the hooks of a run cancelled before it started: the gateway sends the callback."""
    from eotasks.db import CallbackRecord, session
    from eotasks.settings import reset_settings

    monkeypatch.setenv("EOTASKS_CALLBACK_ALLOW_PRIVATE", "true")
    reset_settings()
    try:
        task_id = post(client, key, {**good(), "callback_url": "http://127.0.0.1:9/hook"}).json()["task_id"]
    finally:
        monkeypatch.delenv("EOTASKS_CALLBACK_ALLOW_PRIVATE")
        reset_settings()
    runs.state = "SCHEDULED"
    try:
        assert client.get(f"/api/{task_id}", params={"api_key": key}).json()["task_type"] == "created"
        assert client.delete(f"/api/{task_id}", params={"api_key": key}).status_code == 202
    finally:
        runs.state = "RUNNING"
    with session() as s:
        row = s.exec(__import__("sqlmodel").select(CallbackRecord).where(CallbackRecord.task_id == task_id)).one()
    assert row.body["task_type"] == "cancelled" and row.body["task_id"] == task_id
