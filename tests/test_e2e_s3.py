"""End to end with results in S3 (a moto server), configured by a saved prefect-aws S3Bucket block."""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import SAMPLE_VIEW_ID
from tests.stack import Stack, save_store_block
from tests.test_e2e import GEOMETRY, SCENE_ID, check_ndvi_tif

pytestmark = pytest.mark.e2e


def test_bandmath_results_in_s3_from_a_prefect_block(prefect_server, moto_s3, tmp_path):
    block = save_store_block(prefect_server, moto_s3)
    stack = Stack(tmp_path, prefect_server, {"EOTASKS_STORE_BLOCK": block})
    try:
        task_id = stack.submit("bandmath", {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": GEOMETRY})
        r = stack.wait(task_id)
        assert r.status_code == 303 and "X-Amz-Signature" in r.headers["Location"]
        name, data = stack.result(task_id)
        assert name == f"{SCENE_ID}_NDVI.TIF"
        check_ndvi_tif(data)
        s3 = boto3.client(
            "s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="eotasks-results", Prefix="runs/").get("Contents", [])]
        assert f"runs/{task_id}/{name}" in keys
        assert not (tmp_path / "results").exists()  # nothing went to the local folder
    finally:
        stack.stop()
