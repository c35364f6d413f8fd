"""Register the block types and save eotasks' default blocks, so storage is changed in the Prefect UI.

    eotasks blocks setup --bucket my-results [--prefix eotasks] [--endpoint-url URL]
                         [--assets-endpoint-url URL] [--region R]   (credentials from AWS_* variables)

Saves, on the Prefect server of ``PREFECT_API_URL``:
- ``aws-credentials/eotasks``: credentials (and endpoint, for S3-compatible stores) for results;
- ``s3-bucket/eotasks-results``: the result store       -> EOTASKS_STORE_BLOCK=eotasks-results
- ``s3-bucket/eotasks-prefect-results``: Prefect's own flow results, readable from any machine
                                                        -> PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK=s3-bucket/eotasks-prefect-results
- ``aws-credentials/eotasks-assets``: credentials/endpoint for scene assets
                                                        -> EOTASKS_ASSETS_CREDENTIALS_BLOCK=eotasks-assets
"""

from __future__ import annotations

import os
import subprocess
import sys


def register_block_types() -> None:
    """Make the prefect-aws block types visible in the UI before any block is saved."""
    subprocess.run([sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_aws"], check=True, capture_output=True)


def save_default_blocks(
    bucket: str,
    prefix: str = "eotasks",
    endpoint_url: str | None = None,
    assets_endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    def credentials(endpoint: str | None) -> AwsCredentials:
        return AwsCredentials(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
            region_name=region,
            aws_client_parameters=AwsClientParameters(endpoint_url=endpoint) if endpoint else AwsClientParameters(),
        )

    store = credentials(endpoint_url)
    store.save("eotasks", overwrite=True)
    S3Bucket(bucket_name=bucket, bucket_folder=prefix, credentials=store).save("eotasks-results", overwrite=True)
    S3Bucket(bucket_name=bucket, bucket_folder=f"{prefix}-prefect-results", credentials=store).save(
        "eotasks-prefect-results", overwrite=True
    )
    credentials(assets_endpoint_url or endpoint_url).save("eotasks-assets", overwrite=True)
    return {
        "EOTASKS_STORE_BLOCK": "eotasks-results",
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "s3-bucket/eotasks-prefect-results",
        "EOTASKS_ASSETS_CREDENTIALS_BLOCK": "eotasks-assets",
    }
