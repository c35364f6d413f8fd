"""A Python client for the task API (SPEC §1, §7): submit a task, wait for it, download its answer.

    from eotasks.client import Client

    client = Client("http://127.0.0.1:8000", api_key="apk....")
    task = client.submit("bandmath", view_id="S2/18/S/VG/2020/6/15/0", bm_type="NDVI", geometry=polygon)
    task.wait(progress=True).download("ndvi.tif")

Errors are typed: a 4xx or 5xx answer raises the ``ApiError`` subclass of its code, carrying the
server's sentence and the fields it names (``err.field``); a task that ended failed or cancelled
raises ``TaskFailed`` / ``TaskCancelled`` from ``wait`` and ``download``. Waiting is a long poll
(``?wait=``), one request per change; 429 and 503 are retried after their ``Retry-After``. Every
``submit`` sends an ``Idempotency-Key``, so a retried POST never creates a second task. The key is
sent in the ``x-api-key`` header, never in a URL.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
ENDED = ("finished", "failed", "cancelled")
# The steps each task type goes through, in order (the pending answer's ``stage``).
STAGES = {
    "lbe": ("authentication", "scene_lookup", "crop", "publish"),
    "jpeg": ("authentication", "scene_lookup", "crop", "render", "publish"),
    "bandmath": ("authentication", "scene_lookup", "crop", "index", "publish"),
    "mt_stats": ("authentication", "scene_lookup", "stats", "publish"),
}


class ApiError(Exception):
    """The service refused a request: ``status`` is the HTTP code, ``message`` its sentence,
    ``details`` the fields it names (``[{"field": "params.bbox", "problem": "..."}]``)."""

    status = 0

    def __init__(self, message: str, status: int, details: list[dict[str, str]] | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or []
        self.retry_after = retry_after

    @property
    def field(self) -> str | None:
        """The first field the server named, if any."""
        return self.details[0].get("field") if self.details else None

    def __str__(self) -> str:
        where = f" [{', '.join(d.get('field', '') for d in self.details)}]" if self.details else ""
        return f"{self.status}: {self.message}{where}"


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class RateLimited(ApiError):
    status = 429


class ServiceUnavailable(ApiError):
    status = 503


ERRORS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, RateLimited, ServiceUnavailable)
}


class TaskFailed(Exception):
    """The task ended without an answer: ``stage`` is the step it failed at, ``error`` the server's
    sentence, ``answer`` the whole body."""

    def __init__(self, answer: dict[str, Any]):
        self.answer = answer
        self.task_id = answer.get("task_id")
        self.stage = answer.get("stage")
        self.error = answer.get("error") or "the task failed"
        super().__init__(f"task {self.task_id} {answer.get('task_type', 'failed')} at {self.stage}: {self.error}")


class TaskCancelled(TaskFailed):
    pass


class TimedOut(Exception):
    """``wait(timeout=...)`` ran out before the task ended."""


def default_api_key() -> str | None:
    """``EOTASKS_API_KEY``, else the demo key ``make up`` keeps in the data dir (``.eotasks/demo.key``)."""
    if os.environ.get("EOTASKS_API_KEY"):
        return os.environ["EOTASKS_API_KEY"]
    path = Path(os.environ.get("EOTASKS_DATA_DIR", ".eotasks")) / "demo.key"
    return path.read_text().strip() if path.is_file() else None


class Client:
    """One service, one key. ``url`` defaults to ``EOTASKS_URL`` or http://127.0.0.1:8000."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = (url or os.environ.get("EOTASKS_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or default_api_key()
        if not key:
            raise Unauthorized(
                "No API key: pass api_key=, or set EOTASKS_API_KEY", 401, [{"field": "api_key", "problem": "missing"}]
            )
        self.retries = retries
        self.http = httpx.Client(timeout=timeout, headers={"x-api-key": key}, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, retried after Retry-After on 429 and 503 (``retries`` times); any other 4xx or
        5xx raises its ApiError."""
        for attempt in range(self.retries + 1):
            response = self.http.request(method, f"{self.url}{path}", **kwargs)
            if response.status_code in (429, 503) and attempt < self.retries:
                time.sleep(_retry_after(response, attempt))
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response
        raise AssertionError("unreachable")

    def submit(
        self,
        task_type: str,
        params: dict[str, Any] | None = None,
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        **more_params: Any,
    ) -> Task:
        """POST a task: ``params`` as a dict, or as keywords (``view_id=..., bm_type=...``)."""
        body: dict[str, Any] = {"type": task_type, "params": {**(params or {}), **more_params}}
        if callback_url:
            body["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        answer = self.request("POST", "/api", json=body, headers=headers).json()
        return Task(self, answer["task_id"], task_type)

    def task(self, task_id: str) -> Task:
        return Task(self, task_id)

    def tasks(self, page: int = 1, limit: int = 50) -> list[dict[str, Any]]:
        """The key's tasks, newest first."""
        return list(self.request("GET", "/api", params={"page": page, "limit": limit}).json()["tasks"])

    def search(
        self, search: dict[str, Any], *, dataset: str | None = None, page: int = 1, limit: int = 100, **more: Any
    ) -> dict[str, Any]:
        """SPEC §4's scene search, of every sensor or of one ``dataset``."""
        body = {"search": search, "page": page, "limit": limit, **more}
        path = f"/api/lms/search/v2/{dataset}" if dataset else "/api/lms/search/v2"
        return dict(self.request("POST", path, json=body).json())

    def save_cropper(self, geometry: dict[str, Any]) -> str:
        """Save a geometry once; its ``cropper_ref`` stands for it in later tasks."""
        body = {"type": "Feature", "geometry": geometry, "properties": {}}
        return str(self.request("POST", "/api/render/cropper/", json=body).json()["cropper_ref"])


class Task:
    """A submitted task. ``answer`` is its last answer (``None`` until it was asked for)."""

    def __init__(self, client: Client, task_id: str, task_type: str | None = None):
        self.client = client
        self.id = task_id
        self.type = task_type
        self.answer: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = self.answer.get("task_type", "answered") if self.answer else "not asked"
        return f"<Task {self.id} {self.type or ''} {state}>"

    @property
    def ended(self) -> bool:
        return self.answer is not None and _state(self.answer) in ENDED

    def status(self, wait: float | None = None) -> dict[str, Any]:
        """The task's answer now, or (``wait`` seconds, at most 60) as soon as it changes."""
        params: dict[str, Any] = {"redirect": "false"}
        if wait:
            params["wait"] = min(60.0, wait)
        timeout = (wait or 0) + self.client.http.timeout.read if self.client.http.timeout.read else None
        self.answer = dict(self.client.request("GET", f"/api/{self.id}", params=params, timeout=timeout).json())
        return self.answer

    def changes(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Each answer as the task moves on (one long poll per change), up to the ending one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        answer = self.status()
        yield answer
        while _state(answer) not in ENDED:
            left = 30.0 if deadline is None else min(30.0, deadline - time.monotonic())
            if left <= 0:
                raise TimedOut(f"task {self.id} had not ended after {timeout} s (last: {_state(answer)})")
            before = (_state(answer), answer.get("stage"))
            answer = self.status(wait=left)
            if (_state(answer), answer.get("stage")) != before:
                yield answer

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> Task:
        """Until the task ends; raises TaskFailed / TaskCancelled if it did not finish. With
        ``progress``, a progress bar of its steps on the terminal."""
        if progress:
            self._wait_with_bar(timeout)
        else:
            for _ in self.changes(timeout):
                pass
        assert self.answer is not None
        return self._raise_unless_finished()

    def _wait_with_bar(self, timeout: float | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[bold]{task.fields[kind]}"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        # On stderr: stdout stays the program's answer (``eotasks run ... -o`` prints the path).
        with Progress(*columns, transient=False, console=Console(stderr=True)) as bar:
            row = bar.add_task("queued", total=None, kind=self.type or "task")
            for answer in self.changes(timeout):
                stages = STAGES.get(self.type or "", ())
                stage = str(answer.get("stage") or "")
                state = _state(answer)
                if state in ENDED:
                    done = len(stages) if state == "finished" else (stages.index(stage) if stage in stages else 0)
                    bar.update(row, total=len(stages) or 1, completed=done or (1 if not stages else 0), description=state)
                elif stages and stage in stages:
                    bar.update(row, total=len(stages), completed=stages.index(stage), description=f"{state}: {stage}")
                else:
                    bar.update(row, description=state)

    def _raise_unless_finished(self) -> Task:
        answer = self.answer or {}
        state = _state(answer)
        if state == "cancelled":
            raise TaskCancelled(answer)
        if state == "failed":
            raise TaskFailed(answer)
        return self

    @property
    def result(self) -> dict[str, Any]:
        """The finished answer: statistics (``result``, ``errors``), or the download's
        ``result_url`` and ``files``. Waits for it if need be."""
        if not self.ended:
            self.wait()
        self._raise_unless_finished()
        assert self.answer is not None
        return self.answer

    def download(self, path: str | Path = ".") -> Path:
        """Write the task's file to ``path`` (a folder: under the file's own name); a statistics
        task's answer is written as JSON. Waits for the task to end."""
        import json

        answer = self.result
        target = Path(path)
        if "result_url" not in answer:  # mt_stats: the answer is the data
            target = target / f"{self.id}_mt_stats.json" if target.is_dir() else target
            target.write_text(json.dumps(answer))
            return target
        name = (answer.get("files") or [f"{self.id}.bin"])[0]
        target = target / name if target.is_dir() else target
        partial = target.with_name(target.name + ".part")
        # The signed URL carries its own authority; it is not sent the key.
        with httpx.stream("GET", answer["result_url"], timeout=self.client.http.timeout, follow_redirects=True) as r:
            if r.status_code >= 400:
                r.read()
                raise _error(r)
            with partial.open("wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
        partial.replace(target)
        return target

    def cancel(self) -> dict[str, Any]:
        self.answer = dict(self.client.request("DELETE", f"/api/{self.id}").json())
        return self.answer


def _state(answer: dict[str, Any]) -> str:
    if "task_type" in answer:
        return str(answer["task_type"])
    return "finished" if "result" in answer or "errors" in answer else "started"


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return min(60.0, max(0.1, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return min(30.0, 0.5 * 2**attempt)


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    details = body.get("details") if isinstance(body, dict) and isinstance(body.get("details"), list) else []
    cls = ERRORS.get(response.status_code, ApiError)
    retry = response.headers.get("Retry-After")
    return cls(
        message or f"HTTP {response.status_code}",
        response.status_code,
        details,
        float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
    )
