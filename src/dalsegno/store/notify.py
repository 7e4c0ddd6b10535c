"""Wake-ups between writers and waiters: channels a store notifies, and waits on.

PostgreSQL carries them across processes with LISTEN/NOTIFY (`dalsegno.store.postgres`).
The embedded store has no such thing: its notifications reach waiters of the same
database in the same process only, and a waiter in another process sleeps to its
timeout, so a waiter must always poll on that timeout as well.

On both, the first wait on a channel returns that channel at once: it has just
subscribed, and must look at the store before it waits (a notification sent before the
subscription reached nobody).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from dalsegno.model.errors import RefusedError

CHANNEL = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Work a manager may claim appeared: an execution became `pending`, a lease was released,
# a cancel awaits a manager. The store sends it with the write; the managers wait on it.
PENDING = "dalsegno_pending"


def check_channel(channel: str) -> str:
    """A channel is a lower-case SQL identifier (`dalsegno_pending`), never quoted."""
    if not CHANNEL.fullmatch(channel):
        msg = f"a channel is a lower-case identifier of at most 63 characters: {channel!r}"
        raise RefusedError(msg)
    return channel


class LocalChannels:
    """Channels within one process: a count of notifications per channel.

    Each waiter (a thread) remembers the counts it has seen, so a notification sent
    between two waits is not lost: the next wait returns at once. Any number of threads
    may wait together, each with counts of its own.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counts: dict[str, int] = {}

    def notify(self, channel: str) -> None:
        with self._changed:
            self._counts[channel] = self._counts.get(channel, 0) + 1
            self._changed.notify_all()

    def wait(self, seen: dict[str, int], channels: Iterable[str], timeout: float) -> set[str]:
        """The channels notified since `seen` (updated), waiting up to `timeout` seconds.

        A channel not in `seen` yet is returned at once, as on PostgreSQL.
        """
        wanted = list(channels)
        with self._changed:
            new = {channel for channel in wanted if channel not in seen}
            for channel in new:
                seen[channel] = self._counts.get(channel, 0)
            if new:
                return new

            def notified() -> set[str]:
                return {c for c in wanted if self._counts.get(c, 0) > seen[c]}

            found = self._changed.wait_for(notified, max(0.0, timeout)) or set()
            for channel in found:
                seen[channel] = self._counts[channel]
            return found


_registry_lock = threading.Lock()
_registry: dict[str, LocalChannels] = {}


def local_channels(database: str) -> LocalChannels:
    """The in-process channels of one database (every store opened on it shares them)."""
    with _registry_lock:
        return _registry.setdefault(database, LocalChannels())
