"""Secrets out of logs: API keys, URL signatures and credentials in URLs.

Clients pass their key as ``?api_key=`` and download by signed URLs; uvicorn's access log prints
every request's path with its query, and our own logs name callback URLs. ``redact_url`` keeps what
an operator needs (scheme, host, path, which parameters were there) and drops the secret values.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values are secrets (compared case-insensitively).
SECRET_PARAMS = {
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "signature",
    "sig",
    "password",
    "secret",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
    "x-goog-signature",
    "x-goog-credential",
}
MASK = "***"
_KEY_IN_TEXT = re.compile(r"apk\.[0-9a-f]{8,}")


def redact_url(url: str) -> str:
    """The URL with user:password and secret query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return _KEY_IN_TEXT.sub(f"apk.{MASK}", urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def url_origin(url: str) -> str:
    """Only where a URL goes: scheme, host and port. A webhook's path and query are often its secret
    (Slack, Discord, many CI hooks), so callback URLs are logged like this."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    return f"{parts.scheme}://{host}{port}/{MASK}" if host else MASK


def redact_text(text: str) -> str:
    """Free text that may hold an API key."""
    return _KEY_IN_TEXT.sub(f"apk.{MASK}", text)


class AccessLogRedactor(logging.Filter):
    """For uvicorn's access logger: its record args are (client, method, path?query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
        logger.addFilter(AccessLogRedactor())
