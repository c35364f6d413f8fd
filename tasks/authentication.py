"""Step ``authentication``: the key that created the task is still valid and within its quota."""

from __future__ import annotations

from prefect import task

from eotasks.db import ApiKey, session, tasks_today
from eotasks.errors import AuthError
from tasks._policy import io_step


def check_api_key(api_key_id: int) -> ApiKey:
    with session() as s:
        key = s.get(ApiKey, api_key_id)
    if key is None or key.revoked_at is not None:
        raise AuthError("The API key was revoked before the task started")
    if key.daily_quota is not None and tasks_today(api_key_id) > key.daily_quota:
        raise AuthError(f"The API key's daily quota of {key.daily_quota} tasks is used up")
    return key


@task(name="authentication", task_run_name="authentication", timeout_seconds=60, **io_step())
def authenticate(api_key_id: int) -> str:
    return check_api_key(api_key_id).name
