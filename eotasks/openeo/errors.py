"""openEO's errors: a code of the API's ``errors.json``, an HTTP status and a message."""

from __future__ import annotations

import re
from typing import Any

from eotasks.errors import UserError

# A run's failure message carries its openEO code in front ("ProcessParameterInvalid: ..."), so the
# gateway gives a failed run's error back in openEO's form.
_CODED = re.compile(r"^([A-Z][A-Za-z]+): (.*)$", re.S)


class OpenEOError(UserError):
    """A client's error in openEO's terms (``{"id", "code", "message", "links"}``). A UserError, so a
    run reports it as its failure, in one line."""

    def __init__(self, code: str, message: str, status: int = 400, node_id: str | None = None) -> None:
        self.code, self.status, self.text = code, status, message
        self.node_id = node_id
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.code}: " + (f"[{self.node_id}] " if self.node_id else "") + self.text

    def at_node(self, node_id: str) -> OpenEOError:
        if self.node_id is None:
            self.node_id = node_id
            self.message = self._message()
            self.args = (self.message,)
        return self

    def body(self, request_id: str) -> dict[str, Any]:
        return {"id": request_id, "code": self.code, "message": self.message.split(": ", 1)[1], "links": []}


def process_error(code: str, message: str) -> OpenEOError:
    """An error a process raises while it runs (the code of its definition's ``exceptions``)."""
    return OpenEOError(code, message, 400)


def from_failure(message: str | None) -> tuple[str, str]:
    """(code, message) of a run's failure message: its openEO code, else ``Internal``."""
    found = _CODED.match(message or "")
    if found:
        return found[1], found[2]
    return "Internal", message or "Server error"
