"""Step ``authentication``: the key that created the task is still valid (its daily quota was
spent when the task was accepted: gateway/records.py)."""

from __future__ import annotations

from prefect import task

from eotasks.db import ApiKey, session
from eotasks.errors import AuthError
from tasks._policy import io_step


def check_api_key(api_key_id: int) -> ApiKey:
    with session() as s:
        key = s.get(ApiKey, api_key_id)
    if key is None or key.revoked_at is not None:
        raise AuthError("The API key was revoked before the task started")
    return key


@task(name="authentication", task_run_name="authentication", timeout_seconds=60, **io_step())
def authenticate(api_key_id: int) -> str:
    return check_api_key(api_key_id).name
