"""Callbacks: refused targets (IPv6 forms hiding IPv4), one resolution pinned to the connection,
a deadline against servers that drip bytes or never answer, and the outbox giving up in time."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time

import httpx
import pytest

from eotasks import callbacks


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
        "http://[::1]/hook",
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest",
        "http://10.1.2.3/",
        "http://[fe80::1]/",
        "http://user:pw@example.com/hook",
    ],
)
def test_targets_that_hide_a_private_address_are_refused(url):
    reason = callbacks.check_callback_url(url, allow_private=False)
    assert reason is not None, url


def test_a_public_nat64_address_is_allowed():
    assert callbacks.check_callback_url("http://[64:ff9b::5db8:d70e]/hook", allow_private=False) is None  # 93.184.215.14


class Recording(httpx.AsyncBaseTransport):
    """Where the client was asked to connect; refuses to connect anywhere (nothing leaves loopback)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise httpx.ConnectError("not connecting in a test", request=request)


def test_a_rebinding_name_is_resolved_once_and_the_connection_pinned_to_it():
    answers = iter([[ipaddress.ip_address("93.184.215.14")], [ipaddress.ip_address("127.0.0.1")]])
    calls = []

    def rebinding(host: str, port: int):
        calls.append(host)
        return next(answers)

    transport = Recording()
    delivered, what = asyncio.run(
        callbacks.deliver(
            "https://hooks.example.com:8443/cb?x=1", {"a": 1}, 2.0, allow_private=False, resolver=rebinding, transport=transport
        )
    )
    assert not delivered and what == "ConnectError"
    assert calls == ["hooks.example.com"]  # one resolution, not one more at connect time
    [request] = transport.requests
    assert request.url.host == "93.184.215.14" and request.url.port == 8443 and request.url.query == b"x=1"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"  # TLS still verifies the name


class Listener:
    """A loopback TCP server: counts connections; ``mode`` says how it (mis)behaves."""

    def __init__(self, mode: str) -> None:
        self.mode, self.connections = mode, 0
        self.accepted: list[float] = []  # wall-clock time of each connection
        self.held: list[float] = []  # how long the client kept each connection open
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.stopped = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            self.accepted.append(time.time())
            threading.Thread(target=self.handle, args=(conn, time.monotonic()), daemon=True).start()

    def handle(self, conn: socket.socket, opened: float) -> None:
        try:
            conn.recv(65536)
            if self.mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    if self.stopped.wait(0.25):
                        break
                    conn.send(bytes([byte]))
            elif self.mode == "ok":
                conn.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            conn.settimeout(0.02)
            while not self.stopped.is_set():  # until the client hangs up (or never: silent)
                try:
                    if conn.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        finally:
            self.held.append(time.monotonic() - opened)
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.mark.parametrize("mode", ["drip", "silent"])
def test_an_attempt_ends_at_its_deadline(mode):
    server = Listener(mode)
    try:
        delivered, what = asyncio.run(callbacks.deliver(server.url, {"a": 1}, 1.5, allow_private=True))
        assert not delivered and what == "no answer within 1.5 s"
        deadline = time.monotonic() + 5
        while not server.held and time.monotonic() < deadline:
            time.sleep(0.02)
        # Timed by the server, from accept to hang-up: the client's own start-up does not count.
        [held] = server.held
        assert 1.45 < held < 2.0, held
        assert server.connections == 1
    finally:
        server.close()


def test_loopback_is_never_contacted_when_private_targets_are_refused():
    server = Listener("ok")
    try:
        delivered, what = asyncio.run(callbacks.deliver(server.url, {"a": 1}, 1.0, allow_private=False))
        assert not delivered and what.startswith("refused")
        time.sleep(0.3)
        assert server.connections == 0
    finally:
        server.close()


def test_the_outbox_delivers_once_and_gives_up_in_time(sqlite_url, monkeypatch):
    from eotasks.db import CallbackRecord, session
    from eotasks.settings import reset_settings

    monkeypatch.setenv("EOTASKS_CALLBACK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("EOTASKS_CALLBACK_DEADLINE_S", "1")
    monkeypatch.setenv("EOTASKS_CALLBACK_BACKOFF_S", "0.2")
    monkeypatch.setenv("EOTASKS_CALLBACK_RETRIES", "3")
    reset_settings()
    good, silent = Listener("ok"), Listener("silent")
    try:
        callbacks.enqueue("task-ok", good.url, {"task_id": "task-ok"}, sqlite_url)
        callbacks.enqueue("task-ok", good.url, {"task_id": "task-ok"}, sqlite_url)  # a second end of one task: ignored
        callbacks.enqueue("task-silent", silent.url, {"task_id": "task-silent"}, sqlite_url)
        started = time.monotonic()
        while time.monotonic() - started < 20:
            asyncio.run(callbacks.send_due(sqlite_url))
            with session(sqlite_url) as s:
                rows = {r.task_id: r for r in s.query(CallbackRecord).all()}
            if all(r.done_at for r in rows.values()):
                break
            time.sleep(0.1)
        took = time.monotonic() - started
        assert rows["task-ok"].outcome == "delivered" and rows["task-ok"].attempts == 1 and good.connections == 1
        assert rows["task-silent"].outcome == "gave up" and rows["task-silent"].attempts == 3
        assert rows["task-silent"].last_result == "no answer within 1 s"
        assert took < 3 * 1 + 0.2 + 0.6 + 3, took  # three deadlines and the back-offs, not forever
    finally:
        good.close()
        silent.close()
        reset_settings()
