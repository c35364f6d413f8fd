"""POST a task's final answer to the client's ``callback_url``: durably, safely, out of the run's way.

- **An outbox.** A run that ends only writes a row (``CallbackRecord``); a sender in the gateway
  drains the table. A slow or dead callback server never holds a flow slot and never changes a
  task's outcome, and a callback survives a restart of anything.
- **One resolution.** The host is resolved once per attempt, every address must be public (unless
  the operator allows private ones), and the connection goes to that very address (TLS still checks
  the certificate against the host name): a name that re-binds to 127.0.0.1 between the check and the
  connection never reaches loopback. IPv6 forms that embed IPv4 (NAT64 ``64:ff9b::/96``, 6to4
  ``2002::/16``, IPv4-mapped and -compatible) are judged by the IPv4 address inside.
- **Off the event loop.** Name resolution blocks, so it runs on a few threads of its own, each
  lookup within ``RESOLVE_TIMEOUT_S``: a slow resolver delays that one callback (or submission),
  never another client's request, and never takes the gateway's worker threads.
- **Encodable or refused.** A URL delivery could not put on the wire (a host that is not valid
  IDNA, control characters, spaces) is refused at submission, and given up at once if one is found
  in the outbox, never retried for ever.
- **Bounded.** Each attempt has an overall deadline (connect, send, headers) and reads no body;
  attempts back off (10 s, 30 s, 90 s ...) up to ``EOTASKS_CALLBACK_RETRIES``, then the row is given up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from eotasks.redact import url_origin
from eotasks.settings import get_settings

log = logging.getLogger("eotasks.callbacks")
RESOLVE_TIMEOUT_S = 5.0
# Lookups that hang keep their thread (getaddrinfo cannot be interrupted): a pool of their own.
_RESOLVERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eotasks-dns")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_6TO4 = ipaddress.ip_network("2002::/16")


def embedded_ipv4(addr: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _6TO4:
        return addr.sixtofour
    packed = addr.packed
    if addr in _NAT64 or addr in _NAT64_LOCAL:
        return ipaddress.IPv4Address(packed[-4:])
    if packed[:12] == b"\0" * 12 and packed[12:] != b"\0\0\0\0" and packed[12:] != b"\0\0\0\1":
        return ipaddress.IPv4Address(packed[-4:])  # IPv4-compatible ::a.b.c.d (deprecated, still routed by some)
    return None


def is_public(addr: Address) -> bool:
    """Global, judged by the IPv4 address inside when an IPv6 address carries one."""
    inner = embedded_ipv4(addr)
    return inner.is_global if inner is not None else addr.is_global


def resolve(host: str, port: int) -> list[Address]:
    """Every address the host has (an IP literal is itself). Replaced in tests by a re-binding resolver."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def url_problem(url: str) -> str | None:
    """Why delivery could not send to ``url`` at all, or None."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "must be an http:// or https:// URL with a host"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    try:
        host.encode("idna").decode("ascii")
        httpx.URL(url)
    except (UnicodeError, httpx.InvalidURL, ValueError):
        return "has a host or path that cannot be encoded (use an ASCII or valid IDNA host name)"
    return None


def check_callback_url(
    url: str, allow_private: bool | None = None, resolver: Callable[[str, int], list[Address]] | None = None
) -> str | None:
    """None when the URL may be called, else the reason it may not (blocking; see the async form)."""
    reason, _ = pick_address(url, allow_private, resolver)
    return reason


async def check_callback_url_async(
    url: str, allow_private: bool | None = None, resolver: Callable[[str, int], list[Address]] | None = None
) -> str | None:
    """The gateway's check at submission: the lookup on the resolver threads, within its timeout."""
    reason, _ = await pick_address_async(url, allow_private, resolver)
    return reason


def pick_address(
    url: str, allow_private: bool | None = None, resolver: Callable[[str, int], list[Address]] | None = None
) -> tuple[str | None, Address | None]:
    """(reason refused, None) or (None, the one address to connect to), from a single resolution."""
    problem = url_problem(url)
    if problem:
        return problem, None
    host, port = urlsplit(url).hostname or "", _port(url)
    try:
        addresses = (resolver or resolve)(host.encode("idna").decode("ascii"), port)
    except OSError:
        return f"host {host} does not resolve", None
    return _judge(host, addresses, allow_private)


async def pick_address_async(
    url: str, allow_private: bool | None = None, resolver: Callable[[str, int], list[Address]] | None = None
) -> tuple[str | None, Address | None]:
    """``pick_address`` with the lookup off the event loop, on the resolver threads, bounded in time."""
    problem = url_problem(url)
    if problem:
        return problem, None
    host, port = urlsplit(url).hostname or "", _port(url)
    loop = asyncio.get_running_loop()
    try:
        addresses = await asyncio.wait_for(
            loop.run_in_executor(_RESOLVERS, resolver or resolve, host.encode("idna").decode("ascii"), port), RESOLVE_TIMEOUT_S
        )
    except TimeoutError:
        return f"host {host} did not resolve within {RESOLVE_TIMEOUT_S:g} s", None
    except OSError:
        return f"host {host} does not resolve", None
    return _judge(host, addresses, allow_private)


def _judge(host: str, addresses: list[Address], allow_private: bool | None) -> tuple[str | None, Address | None]:
    allow = get_settings().callback_allow_private if allow_private is None else allow_private
    if not addresses:
        return f"host {host} does not resolve", None
    if not allow:
        for addr in addresses:
            if not is_public(addr):
                return f"host {host} is a loopback, private or link-local address; callbacks there are not allowed", None
    return None, addresses[0]


async def deliver(
    url: str,
    body: dict[str, Any],
    deadline_s: float,
    allow_private: bool | None = None,
    resolver: Callable[[str, int], list[Address]] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[bool, str]:
    """One attempt: (delivered, what happened). Connects to the checked address only; reads no body."""
    reason, addr = await pick_address_async(url, allow_private, resolver)
    if reason:
        return False, f"refused: {reason}"
    assert addr is not None
    parts = urlsplit(url)
    ip_host = f"[{addr}]" if addr.version == 6 else str(addr)
    netloc = f"{ip_host}:{_port(url)}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    try:
        async with httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=deadline_s) as client:
            async with asyncio.timeout(deadline_s):
                request = client.build_request("POST", pinned, json=body, headers={"Host": host_header}, extensions=extensions)
                response = await client.send(request, stream=True)
                status = response.status_code
                await response.aclose()  # the body is never read: a server cannot make us read megabytes
    except TimeoutError:
        return False, f"no answer within {deadline_s:g} s"
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return (status < 400), f"answered {status}"


# --- the outbox ---------------------------------------------------------------------------------------


def enqueue(task_id: str, url: str, body: dict[str, Any], db_url: str | None = None) -> None:
    """Record a callback to send (once per task: a second final state of the same task is ignored)."""
    from sqlalchemy.exc import IntegrityError

    from eotasks.db import CallbackRecord, session

    with session(db_url) as s:
        s.add(CallbackRecord(id=str(uuid.uuid4()), task_id=task_id, url=url, body=body))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()


def backoff_s(attempt: int) -> float:
    return get_settings().callback_backoff_s * 3 ** (attempt - 1)


def _claim(now: dt.datetime, lease_s: float, db_url: str | None) -> list[Any]:
    """Lease due rows to this sender: an UPDATE that only succeeds while the row is unleased, so two
    gateways never send the same callback at once (a crashed sender's lease simply expires)."""
    from sqlalchemy import CursorResult, update
    from sqlmodel import col, select

    from eotasks.db import CallbackRecord, session

    done_at, next_at = col(CallbackRecord.done_at), col(CallbackRecord.next_attempt_at)
    claimed = []
    with session(db_url) as s:
        due = s.exec(select(CallbackRecord.id).where(done_at.is_(None), next_at <= now).order_by(next_at).limit(20)).all()
        for row_id in due:
            result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
                update(CallbackRecord)
                .where(col(CallbackRecord.id) == row_id, done_at.is_(None), next_at <= now)
                .values(next_attempt_at=now + dt.timedelta(seconds=lease_s))
            )
            s.commit()
            if result.rowcount == 1:
                claimed.append(s.get(CallbackRecord, row_id))
    return claimed


def _record(row_id: str, delivered: bool, what: str, max_attempts: int, db_url: str | None) -> None:
    from eotasks.db import CallbackRecord, session, utcnow

    with session(db_url) as s:
        row = s.get(CallbackRecord, row_id)
        if row is None:  # removed meanwhile (an operator's clean-up): nothing to record
            return
        row.attempts += 1
        row.last_result = what
        now = utcnow()
        if delivered:
            row.done_at, row.outcome = now, "delivered"
        elif row.attempts >= max_attempts or what.startswith("refused"):
            row.done_at, row.outcome = now, "gave up"
        else:
            row.next_attempt_at = now + dt.timedelta(seconds=backoff_s(row.attempts))
        s.add(row)
        s.commit()
        outcome = row.outcome
    if outcome == "gave up":
        log.warning("callback for task %s given up after %d attempt(s): %s", row.task_id, row.attempts, what)


async def send_due(
    db_url: str | None = None,
    resolver: Callable[[str, int], list[Address]] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Send every due callback once (concurrently); how many were attempted."""
    from starlette.concurrency import run_in_threadpool

    from eotasks.db import utcnow

    settings = get_settings()
    rows = await run_in_threadpool(_claim, utcnow(), settings.callback_deadline_s + 30, db_url)

    async def one(row: Any) -> None:
        try:
            delivered, what = await deliver(
                row.url, row.body, settings.callback_deadline_s, resolver=resolver, transport=transport
            )
        except Exception as exc:  # whatever it was, this attempt is over: counted, retried or given up
            delivered, what = (
                False,
                f"refused: {type(exc).__name__}" if isinstance(exc, (UnicodeError, ValueError)) else type(exc).__name__,
            )
        log.info("callback for task %s to %s: %s", row.task_id, url_origin(row.url), what)
        await run_in_threadpool(_record, row.id, delivered, what, settings.callback_retries, db_url)

    await asyncio.gather(*(one(r) for r in rows))
    return len(rows)


async def sender_loop(interval_s: float = 1.0) -> None:
    """The gateway's background sender: drain the outbox for ever (errors are logged, never fatal)."""
    while True:
        try:
            await send_due()
        except Exception as exc:  # the database may be away for a while: try again
            log.warning("callback sender: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
