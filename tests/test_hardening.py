"""Hostile input and secrets, below the HTTP layer: bounded evaluation memory, no secret in a repr
or a log line, the signing secret's file mode, clients told sentences instead of paths."""

from __future__ import annotations

import logging
import stat
import threading
import tracemalloc

import numpy as np
import pytest
import rasterio

from eotasks.raster import expression as ex


def test_evaluation_memory_does_not_grow_with_expression_depth():
    """`(B4+1)*(` x 30 over a 2000 x 2000 raster: temporaries are bounded by blocks, not by depth."""
    text = "(B4+1)*(" * 30 + "B4" + ")" * 30
    [ast] = ex.parse(text)
    band = np.random.default_rng(0).random((2000, 2000))
    out_bytes = band.size * 8
    tracemalloc.start()
    try:
        with np.errstate(all="ignore"):
            values = ex.evaluate_blocks(ast, {"B4": band}, band.shape)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output itself plus a few megabytes; evaluating whole arrays would hold ~31 x 32 MB.
    assert peak < out_bytes + 64 * 2**20, peak / 2**20
    with np.errstate(all="ignore"):
        direct = ex.evaluate(ast, {"B4": band[:50, :50]})
    np.testing.assert_array_equal(values[:50, :50], direct)


def test_min_and_max_propagate_nan():
    [ast] = ex.parse("max(log(B4 - 1), 0)")
    with np.errstate(all="ignore"):
        out = ex.evaluate(ast, {"B4": np.array([0.5, 3.0])})
    assert np.isnan(out[0]) and out[1] == pytest.approx(np.log(2.0))


def test_result_store_repr_has_no_secret():
    from eotasks.store import ResultStore

    store = ResultStore(url="s3://bucket/prefix", key_id="AKIAEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "wJalrXUtnFEMI" not in repr(store) and "wJalrXUtnFEMI" not in str(store)


def test_signing_secret_is_private_and_created_once(tmp_path):
    from eotasks.settings import Settings

    settings = Settings(data_dir=tmp_path)
    secrets_seen: list[str] = []
    threads = [threading.Thread(target=lambda: secrets_seen.append(settings.resolved_signing_secret)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    path = tmp_path / "signing.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(secrets_seen)) == 1 and len(secrets_seen[0]) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["signing.secret"]  # no temporary left behind
    assert "hunter2" not in repr(Settings(signing_secret="hunter2hunter2"))
    assert Settings(signing_secret="hunter2hunter2").resolved_signing_secret == "hunter2hunter2"


def test_access_log_redacts_keys_signatures_and_credentials(caplog):
    from eotasks.redact import AccessLogRedactor

    logger = logging.getLogger("uvicorn.access.test")
    logger.addFilter(AccessLogRedactor())
    key = "apk." + "ab" * 32
    with caplog.at_level(logging.INFO, logger="uvicorn.access.test"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/api/x?api_key={key}&redirect=false", "1.1", 200)
        logger.info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/api/download/a.tif?expires=1&signature=" + "f" * 64, "1.1", 200
        )
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/x?X-Amz-Credential=AKIAX&X-Amz-Signature=abcd", "1.1", 200)
    text = caplog.text
    assert key not in text and "f" * 64 not in text and "AKIAX" not in text and "abcd" not in text
    assert "api_key=***" in text and "redirect=false" in text


@pytest.mark.parametrize("make", ["missing", "corrupt"])
def test_unreadable_scene_errors_are_sentences_without_paths(tmp_path, make):
    from tasks.stats import read_error_sentence

    path = tmp_path / "secret-bucket-path" / "B08.tif"
    if make == "corrupt":
        path.parent.mkdir()
        path.write_bytes(b"II*\x00 this is not a GeoTIFF")
    with pytest.raises(Exception) as info:
        rasterio.open(path)
    sentence = read_error_sentence(info.value)
    assert "secret-bucket-path" not in sentence and "/" not in sentence
    assert sentence == ("one of its band files is missing" if make == "missing" else "one of its band files is corrupt")


def test_s3_assets_use_the_credential_chain_unless_told_unsigned(monkeypatch, tmp_path):
    from eotasks import assets
    from eotasks.settings import reset_settings

    def options(**env):
        for k in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "EOTASKS_ASSETS_UNSIGNED",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
        ):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reset_settings()
        assets.aws_session_options.cache_clear()
        try:
            return assets.aws_session_options()
        finally:
            assets.aws_session_options.cache_clear()
            reset_settings()

    # A profile's credentials (the chain, as an instance role would be) are used, not dropped.
    (tmp_path / "creds").write_text("[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = s3cr3t\n")
    assert "aws_unsigned" not in options(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "creds"))
    assert options()["aws_unsigned"] is True  # no credentials anywhere: a public bucket
    assert options(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "creds"), EOTASKS_ASSETS_UNSIGNED="true")["aws_unsigned"] is True
    assert "aws_unsigned" not in options(EOTASKS_ASSETS_UNSIGNED="false")
