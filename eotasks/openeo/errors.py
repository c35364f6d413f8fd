"""openEO's errors: a code of the API's ``errors.json``, an HTTP status and a message."""

from __future__ import annotations

from typing import Any

from eotasks.errors import UserError


class OpenEOError(UserError):
    """A client's error in openEO's terms (``{"id", "code", "message", "links"}``). A UserError, so the
    flows report it to the client as the run's failure, in one line."""

    def __init__(self, code: str, message: str, status: int = 400, node_id: str | None = None) -> None:
        self.code = code
        self.status = status
        self.node_id = node_id
        super().__init__(f"[{node_id}] {message}" if node_id else message)

    def body(self, request_id: str) -> dict[str, Any]:
        return {"id": request_id, "code": self.code, "message": self.message, "links": []}


def process_error(code: str, message: str) -> OpenEOError:
    """An error a process raises while it runs (the code of its definition's ``exceptions``)."""
    return OpenEOError(code, message, 400)
