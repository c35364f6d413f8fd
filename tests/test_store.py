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


def test_s3_links_are_signed_for_at_most_seven_days(moto_s3):
    """SigV4 refuses presigned URLs beyond 7 days: a 30-day chart link is signed for 7."""
    from urllib.parse import parse_qs, urlsplit

    from eotasks.store import ResultStore

    store = ResultStore("s3://eotasks-results/x", endpoint_url=moto_s3, key_id="testing", secret="testing")
    url = store.download_url("t/chart.svg", ttl_s=30 * 86400)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(7 * 86400)]


def test_a_reader_never_sees_a_half_written_result(tmp_path):
    """A key is written under a new name and renamed over it when whole: while a second writer is
    half way (a resubmitted run whose first process lives on), readers see the first whole file."""
    import threading
    import time

    from eotasks.store import ResultStore

    store = ResultStore(str(tmp_path))
    first = b"a" * 1_000_000
    store.put("task/out.tif", first)
    started = threading.Event()

    def slow():
        for i in range(20):
            if i == 1:
                started.set()
            time.sleep(0.02)
            yield b"b" * 50_000

    writer = threading.Thread(target=store.put_chunks, args=("task/out.tif", slow()))
    writer.start()
    started.wait()
    seen = set()
    while writer.is_alive():
        seen.add(store.get("task/out.tif"))
    writer.join()
    assert seen <= {first, b"b" * 1_000_000} and first in seen
    assert store.get("task/out.tif") == b"b" * 1_000_000
    assert [p.name for p in (tmp_path / "task").iterdir()] == ["out.tif"]  # no partial file left behind
