"""Who this process is, and whether a recorded lease still binds anyone."""

from __future__ import annotations

import os
import socket
import time
from functools import cache

from dalsegno.model.records import LeaseOwner

DEFAULT_LEASE_TIMEOUT = 15.0


def lease_timeout() -> float:
    """`DALSEGNO_LEASE_TIMEOUT` in seconds (default 15)."""
    raw = os.environ.get("DALSEGNO_LEASE_TIMEOUT")
    if not raw:
        return DEFAULT_LEASE_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        msg = f"DALSEGNO_LEASE_TIMEOUT must be a number of seconds, not {raw!r}"
        raise ValueError(msg) from None
    if value <= 0:
        msg = f"DALSEGNO_LEASE_TIMEOUT must be > 0, not {raw!r}"
        raise ValueError(msg)
    return value


def process_start(pid: int) -> str:
    """A token of when `pid` started (from /proc), so that a reused pid is told apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return fields[19]  # field 22 of stat(5): starttime, in clock ticks since boot
    except (OSError, IndexError):
        return ""


@cache
def _host() -> str:
    return socket.gethostname()


def this_owner() -> LeaseOwner:
    """The lease owner this process writes: host, pid and the pid's start time."""
    pid = os.getpid()
    return LeaseOwner(host=_host(), pid=pid, proc_start=process_start(pid))


def owner_is_dead(owner: LeaseOwner) -> bool:
    """True only when the owner is on this host and its process is gone (or the pid reused)."""
    if owner.host != _host():
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    if owner.proc_start and process_start(owner.pid) not in ("", owner.proc_start):
        return True
    return _is_zombie(owner.pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def lease_is_free(
    owner: LeaseOwner | None, expires_at: float | None, now: float | None = None
) -> bool:
    """A lease binds nobody once it expired, or at once when its local owner is dead."""
    if owner is None or expires_at is None:
        return True
    if (now if now is not None else time.time()) >= expires_at:
        return True
    return owner_is_dead(owner)
