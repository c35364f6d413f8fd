"""Start and stop the embedded default: Prefect server (SQLite), served deployments, gateway.

Used by ``eotasks up`` and by the end-to-end tests, so both run exactly the same processes.
Each component runs under ``eotasks.supervised``, the leader of its own process group, which takes
the whole group down when it is stopped or when its starter dies: SIGTERM, then SIGKILL after a
grace period. So a stopped service leaves no process behind (a forkserver, its resource tracker,
a flow-run child), whatever it was doing and however the starter ended.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortInUse(RuntimeError):
    """A port the service must listen on is taken: nothing is started."""


def require_free_port(host: str, port: int, variable: str) -> None:
    """Refuse to start on a port another program holds: its health check would answer for ours."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        # As the servers themselves bind: a port whose last connections are in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} on {host} is already in use ({exc.strerror}): another eotasks or another program "
                f"holds it; stop that, or choose a free port with {variable}=<port>"
            ) from None


def log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a component's log: why it stopped, in the supervisor's own message."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def service_env(data_dir: Path, prefect_port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every process of one service shares (the same Prefect API, database, store)."""
    data_dir = data_dir.resolve()
    env = dict(os.environ)
    env.update(
        {
            "EOTASKS_DATA_DIR": str(data_dir),
            "PREFECT_HOME": str(data_dir / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(prefect_port),
            # Flow results (small JSON) are read back by the gateway from the same folder.
            "PREFECT_LOCAL_STORAGE_PATH": str(data_dir / "prefect" / "results"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            # A write conflict on SQLite is a 503 the client retries in milliseconds (eotasks/prefect_api.py);
            # logging each with a rich traceback costs the server much of its CPU in a burst (Prefect's
            # default is not to). Real errors (500s) are still logged.
            "PREFECT_API_LOG_RETRYABLE_ERRORS": env.get("PREFECT_API_LOG_RETRYABLE_ERRORS", "false"),
            # Task runs and events reach the database in batches, not one transaction each: less of the
            # server's CPU per run and fewer write conflicts. A task run shows up within a second (the
            # gateway's `stage`); events within two (the UI's event feed; automations read the stream).
            "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": env.get(
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "20"
            ),
            "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": env.get(
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL", "1"
            ),
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": env.get(
                "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "200"
            ),
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": env.get(
                "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL", "2"
            ),
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "INFO"),
            # The worker also stops a run cancelled between its submission and its start (kill_infrastructure).
            "PREFECT_WORKER_ENABLE_CANCELLATION": env.get("PREFECT_WORKER_ENABLE_CANCELLATION", "true"),
            # A run over its deployment's concurrency_limit (prefect.yaml) is tried again after this long,
            # not Prefect's default 30 s: the warm worker starts it within milliseconds of a free slot.
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": env.get(
                "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "3"
            ),
            # Heartbeats every 30 s (Prefect's minimum): the recovery automation notices a dead run in ~100 s.
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": env.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30"),
        }
    )
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path.home() / ".cache" / "eotasks-pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # every Prefect process would recompile Prefect (seconds each)
    if extra:
        env.update(extra)
    return env


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, what: str = "", log: Path | None = None) -> None:
    """Wait until ``url`` answers, while ``proc`` (the process that should answer it) lives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            why = log_tail(log) if log is not None else ""
            raise RuntimeError(f"{what or url} exited with code {proc.returncode} before it was ready{': ' + why if why else ''}")
        try:
            if httpx.get(url, timeout=2).status_code < 500 and (proc is None or proc.poll() is None):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what or url} was not ready within {timeout:.0f} s")


@dataclass
class Service:
    """A set of child processes started with one environment, stopped in reverse order."""

    env: dict[str, str]
    log_dir: Path
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    args: dict[str, list[str]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        supervised = [sys.executable, "-m", "eotasks.supervised", "--", *args]
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor of it
            proc = subprocess.Popen(supervised, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs = [(n, p) for n, p in self.procs if n != name] + [(name, proc)]
        self.args[name] = args
        return proc

    def restart_dead(self, backoff: dict[str, tuple[float, float]], log: Callable[[str], None]) -> None:
        """Start again each process that has exited, waiting 1, 2, 4 ... 60 s between attempts for a
        process that keeps dying (a process that ran 60 s is healthy again: its back-off resets)."""
        now = time.monotonic()
        for name, proc in list(self.procs):
            if proc.poll() is None:
                continue
            delay, not_before = backoff.get(name, (1.0, 0.0))
            if now < not_before:
                continue
            why = log_tail(self.log_dir / f"{name}.log")
            log(
                f"{name} exited with code {proc.returncode}{': ' + why if why else ''}; restarting it "
                f"(see {self.log_dir / (name + '.log')})"
            )
            self.start(name, self.args[name])
            backoff[name] = (min(delay * 2, 60.0), now + delay)
        for name, (delay, not_before) in list(backoff.items()):
            if now - not_before > 60 and delay > 1:
                backoff[name] = (1.0, 0.0)

    def supervise(
        self, log: Callable[[str], None] = print, interval: float = 0.5, until: Callable[[], bool] | None = None
    ) -> None:
        """Keep every process running until ``until()`` is true (or for ever): the service keeps
        answering while a component restarts (the gateway while the worker restarts, and so on)."""
        backoff: dict[str, tuple[float, float]] = {}
        while until is None or not until():
            self.restart_dead(backoff, log)
            time.sleep(interval)

    def start_prefect_server(self, port: int, timeout: float = 120) -> subprocess.Popen:
        require_free_port("127.0.0.1", port, "EOTASKS_PREFECT_PORT")
        proc = self.start(
            "prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        )
        wait_http(f"http://127.0.0.1:{port}/api/health", timeout, proc, "Prefect server", self.log_dir / "prefect-server.log")
        return proc

    def start_serve(self, deployment_names: list[str], timeout: float = 90) -> subprocess.Popen:
        proc = self.start("serve", [sys.executable, "-m", "deployments.serve"])
        api = self.env["PREFECT_API_URL"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the serve process exited with code {proc.returncode}; see {self.log_dir / 'serve.log'}")
            try:
                ok = all(httpx.get(f"{api}/deployments/name/{name}", timeout=2).status_code == 200 for name in deployment_names)
                if ok:
                    return proc
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the served deployments did not appear")

    def start_gateway(self, host: str, port: int, timeout: float = 60, name: str = "gateway") -> subprocess.Popen:
        require_free_port(host, port, "EOTASKS_PORT")
        proc = self.start(
            name,
            [sys.executable, "-m", "uvicorn", "gateway.app:app", "--host", host, "--port", str(port), "--log-level", "info"],
        )
        wait_http(f"http://{host}:{port}/health", timeout, proc, name, self.log_dir / f"{name}.log")
        return proc

    def stop(self, grace: float = 15) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + grace
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self.procs.clear()
