"""The result store through its one code path: a local folder and S3 (moto server) from settings."""

from __future__ import annotations

import time

import httpx
import pytest

from eotasks.settings import Settings
from eotasks.store import ResultStore, get_store, safe_key, sign, verify


def test_local_store_round_trip_and_signed_urls(tmp_path):
    store = ResultStore(str(tmp_path))
    store.put("task/a.tif", b"abc")
    assert store.get("task/a.tif") == b"abc" and store.local_path("task/a.tif") == tmp_path / "task" / "a.tif"
    url = store.download_url("task/a.tif", Settings(signing_secret="s", public_url="http://h:1"))
    assert url.startswith("http://h:1/api/download/task/a.tif?expires=")
    expires = int(time.time()) + 60
    assert verify("task/a.tif", expires, sign("task/a.tif", expires, "s"), "s")
    assert not verify("task/b.tif", expires, sign("task/a.tif", expires, "s"), "s")
    assert not verify("task/a.tif", int(time.time()) - 1, sign("task/a.tif", int(time.time()) - 1, "s"), "s")


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "", "a//b/..", "a\\\\..\\\\b"])
def test_keys_cannot_escape_the_store(key):
    with pytest.raises(ValueError):
        safe_key(key)


def test_s3_store_from_settings_with_presigned_url(moto_s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = get_store(Settings(store_url="s3://eotasks-results/unit", s3_endpoint_url=moto_s3))
    assert store.is_s3
    store.put("t1/result.tif", b"\\x00\\x01payload")
    assert store.get("t1/result.tif") == b"\\x00\\x01payload"
    url = store.download_url("t1/result.tif", ttl_s=60)
    assert "X-Amz-Signature" in url and "/eotasks-results/unit/t1/result.tif" in url
    assert httpx.get(url).content == b"\\x00\\x01payload"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=60" in url
