"""LISTEN on PostgreSQL for a whole store: one connection, one thread, any number of waiters.

The agents' long-poll handlers and the manager all wait at once: each waiter waits on a
condition in this process, and the listening thread fans every notification out to them,
so a store holds one LISTEN connection however many threads wait. The thread blocks in
`select` on the connection's socket and on a pipe that a new subscription or `close`
writes to: nothing polls. A lost connection is reconnected with backoff; notifications
sent meanwhile may have been lost, so every channel is then fanned out: each waiter looks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from dalsegno.store.notify import LocalChannels

log = logging.getLogger("dalsegno.store")

KEEPALIVE = 15.0  # seconds: an idle connection is checked (a dead socket is not readable)
BACKOFF = (0.1, 5.0)  # first and longest wait between two attempts to reconnect
SUBSCRIBE_WAIT = 5.0  # the longest a first wait waits for its LISTEN to be in place

Connect = Callable[[], "psycopg.Connection[Any]"]


class Listener:
    """The LISTEN connection of one store, fanning notifications out to its waiters."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._fanout = LocalChannels()
        self._seen = threading.local()  # each waiting thread's counts of notifications
        self._state = threading.Condition()
        self._wanted: set[str] = set()
        self._listening: set[str] = set()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_read, self._wake_write = os.pipe()
        self.connection: psycopg.Connection[Any] | None = None  # the current one, if any

    def wait(self, channels: Iterable[str], timeout: float) -> set[str]:
        """The channels notified since this thread's last wait, waiting up to `timeout`.

        A channel this thread never waited on is returned at once, once LISTEN is in place
        (or the server cannot be reached: then the caller's look is its poll).
        """
        wanted = set(channels)
        deadline = time.monotonic() + max(0.0, timeout)
        with self._state:
            if self._closed:  # the store was closed: a timeout, not a busy loop for the caller
                self._state.wait(max(0.0, timeout))
                return set()
            new = wanted - self._wanted
            if new:
                self._wanted |= new
                self._start()
                self._poke()
                self._state.wait_for(lambda: new <= self._listening or self._closed, SUBSCRIBE_WAIT)
        seen: dict[str, int] | None = getattr(self._seen, "counts", None)
        if seen is None:
            seen = self._seen.counts = {}
        return self._fanout.wait(seen, wanted, max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        with self._state:
            self._closed = True
            self._state.notify_all()
            thread, self._thread = self._thread, None
        self._poke()
        if thread is not None:
            thread.join(5.0)
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    # the listening thread ------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dalsegno-listen", daemon=True)
            self._thread.start()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # closed: the thread is ending anyway
            os.write(self._wake_write, b".")

    def _run(self) -> None:
        delay = BACKOFF[0]
        while not self._closed:
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1f s", exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, BACKOFF[1])
                continue
            delay = BACKOFF[0]
            self.connection = conn
            try:
                self._listen_on(conn)
            except (psycopg.Error, OSError) as exc:
                if not self._closed:
                    log.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.connection = None
                with self._state:
                    self._listening = set()
                    lost = set(self._wanted)
                conn.close()
            for channel in lost:  # what was sent meanwhile may be lost: every waiter looks
                self._fanout.notify(channel)

    def _listen_on(self, conn: psycopg.Connection[Any]) -> None:
        while not self._closed:
            self._subscribe(conn)
            ready, _, _ = select.select([conn.fileno(), self._wake_read], [], [], KEEPALIVE)
            if self._wake_read in ready:
                os.read(self._wake_read, 4096)
            if not ready:
                conn.execute("SELECT 1")  # finds a connection that died without a word
            self._deliver(conn)

    def _subscribe(self, conn: psycopg.Connection[Any]) -> None:
        with self._state:
            new = self._wanted - self._listening
        for channel in sorted(new):
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        if new:
            self._deliver(conn)
            with self._state:
                self._listening |= new
                self._state.notify_all()

    def _deliver(self, conn: psycopg.Connection[Any]) -> None:
        for notification in conn.notifies(timeout=0):
            self._fanout.notify(notification.channel)

    def _sleep(self, seconds: float) -> None:
        """Wait before reconnecting; `close` cuts it short."""
        ready, _, _ = select.select([self._wake_read], [], [], seconds)
        if ready:
            os.read(self._wake_read, 4096)
