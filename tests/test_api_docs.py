"""The API's documentation: the pages work offline, the OpenAPI document says what the gateway really
does (its key, its codes, examples that validate), and docs/api.md is what the models generate."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eotasks.apidoc import render
from eotasks.catalog.ingest import ingest_folder
from gateway.app import create_app
from gateway.routes.tasks import TASK_REQUEST
from gateway.submission import check_budget
from tests.conftest import CROP_DIR, SAMPLE_VIEW_ID
from tests.test_gateway import FakeRuns

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(FakeRuns())) as c:
        yield c


class References(HTMLParser):
    """Every URL a page makes the browser fetch: scripts, styles, icons, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("src", "href") and tag in ("script", "link", "img", "iframe", "source"):
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_ask_nothing_of_any_other_host(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = References()
    refs.feed(r.text)
    assert refs.urls, r.text
    for url in refs.urls:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    # Nor does the page's own script: no absolute URL in it, and Swagger UI's validator badge is off.
    inline = " ".join(re.findall(r"<script>(.*?)</script>", r.text, flags=re.S))
    assert not re.search(r"https?://", inline), inline
    if page == "/docs":
        assert '"validatorUrl": null' in r.text


def test_the_document_declares_the_key_and_only_codes_really_returned(client):
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["api_key"] == {"type": "apiKey", "in": "query", "name": "api_key"}
    assert schemes["x-api-key"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            keyed = path.startswith("/api") and not path.startswith("/api/download")
            assert bool(operation.get("security")) == keyed, (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # A query parameter out of range is a 400 with SPEC's body, as the document says.
    r = client.get("/api/some-task", params={"wait": 500, "api_key": "x"})
    assert r.status_code in (400, 403) and r.json()["status"] is False


def test_each_task_types_example_validates_and_passes_the_checks(client, sqlite_url, monkeypatch):
    """What "Try it out" sends: one request per task type, valid, within every budget, and on the
    scene the sample ingests (the AOI meets it)."""
    monkeypatch.setenv("EOTASKS_DATABASE_URL", sqlite_url)
    from eotasks.settings import reset_settings

    reset_settings()
    try:
        ingest_folder(CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A")
        body = client.get("/openapi.json").json()["paths"]["/api"]["post"]["requestBody"]["content"]["application/json"]
        assert set(body["examples"]) == {"bandmath", "lbe", "jpeg", "mt_stats"}
        for name, example in body["examples"].items():
            task = TASK_REQUEST.validate_python(example["value"])
            assert task.type == name
            check_budget(task.type, task.params)  # raises on an AOI outside the scene, a budget passed
    finally:
        monkeypatch.delenv("EOTASKS_DATABASE_URL")
        reset_settings()


def test_the_reference_in_docs_is_what_the_models_generate():
    committed = (REPO / "docs" / "api.md").read_text()
    assert committed == render(), "docs/api.md is stale: run `uv run python -m eotasks.apidoc > docs/api.md`"
