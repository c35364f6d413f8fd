"""POST a task's final answer to the client's ``callback_url``, safely.

Targets on loopback, private, link-local or otherwise non-public addresses are refused unless the
operator sets ``EOTASKS_CALLBACK_ALLOW_PRIVATE=true``; the check runs at submission (a 400) and
again when sending (DNS may have changed). A failing callback never changes the task's outcome.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from eotasks.redact import redact_url
from eotasks.settings import get_settings

log = logging.getLogger("eotasks.callbacks")


def check_callback_url(url: str, allow_private: bool | None = None, resolve: bool = True) -> str | None:
    """None when the URL may be called, else the reason it may not."""
    allow = get_settings().callback_allow_private if allow_private is None else allow_private
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if allow:
        return None
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return None
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
        except OSError:
            return f"host {host} does not resolve"
        addresses = [ipaddress.ip_address(i[4][0]) for i in infos]
    for addr in addresses:
        if not addr.is_global:
            return f"host {host} is a loopback, private or link-local address; callbacks there are not allowed"
    return None


def send_callback(url: str, body: dict[str, Any]) -> bool:
    settings = get_settings()
    reason = check_callback_url(url)
    if reason:
        log.warning("callback to %s refused: %s", redact_url(url), reason)
        return False
    for attempt in range(1, settings.callback_retries + 1):
        try:
            response = httpx.post(url, json=body, timeout=settings.callback_timeout_s, follow_redirects=False)
            if response.status_code < 400:
                return True
            log.warning("callback to %s answered %s (attempt %d)", redact_url(url), response.status_code, attempt)
        except httpx.HTTPError as exc:
            log.warning("callback to %s failed: %s (attempt %d)", redact_url(url), type(exc).__name__, attempt)
        time.sleep(min(2 ** attempt, 10))
    return False
