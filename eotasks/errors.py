"""Exceptions whose message a user can act on.

A ``UserError`` is the client's problem (unknown scene, AOI outside the scene, bad expression):
retrying it is pointless, and its message goes to the client verbatim. Everything else is ours:
it is retried where the step allows and reported to the client without internals.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the client caused and can fix; the message is shown to the client."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class SceneNotFound(UserError):
    def __init__(self, view_id: str):
        super().__init__("Scene with given ID does not exist", field="params.view_id")
        self.view_id = view_id


class AOIError(UserError):
    pass


class ExpressionError(UserError):
    """A band-maths expression that does not parse or names something unknown."""

    def __init__(self, message: str, token: str | None = None, position: int | None = None):
        super().__init__(message, field="params.bm_type")
        self.token = token
        self.position = position


class AuthError(UserError):
    pass


class AssetReadError(Exception):
    """A scene asset could not be read (I/O): worth retrying."""


class SceneSkipped(UserError):
    """A scene left out of a time series for a reason the client should see (not a failure)."""
