"""Run one component of the service so that nothing it starts outlives the service.

    python -m eotasks.supervised -- COMMAND [ARGS ...]

The launcher starts every component (Prefect server, worker, gateway) through this. It leads the
component's process group (the launcher gives it a new session), and the command and everything
the command starts are members: a warm worker's forkserver, the forkserver's resource tracker and
every flow-run child. When this process is told to stop (SIGTERM or SIGINT), or when the process
that started it dies without a word (``eotasks up`` killed with SIGKILL: the kernel then sends the
parent-death signal set below), it sends SIGTERM to the whole group, waits ``EOTASKS_STOP_GRACE_S``
seconds for the members to go, then SIGKILL to whatever is left, itself included.

A member that ignores SIGTERM (Python's resource tracker does, Prefect's worker does for a while)
is therefore still gone within the grace period. When the command exits on its own, its exit code
is passed on and the other members are left alone: a warm worker's children finish their runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` when the process that started this one dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the launcher's own stop still applies
        pass


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group (zombies are already gone for this purpose)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def stop_group(child: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the whole group, then SIGKILL to what is left after ``grace_s``."""
    me, pgid = os.getpid(), os.getpgid(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        child.poll()  # reap our own child, so it does not linger as a zombie member
        if not [p for p in group_members(pgid) if p != me]:
            return
        time.sleep(0.1)
    sys.stdout.flush()
    os.killpg(pgid, signal.SIGKILL)  # the last act: this process is a member too


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m eotasks.supervised -- COMMAND [ARGS ...]", file=sys.stderr)
        return 2
    grace_s = float(os.environ.get("EOTASKS_STOP_GRACE_S", "5"))
    parent = os.getppid()
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the starter died before the death signal was armed
        return 1
    child = subprocess.Popen(argv)
    while not stopping:
        code = child.poll()
        if code is not None:
            return code
        time.sleep(0.1)
    stop_group(child, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
