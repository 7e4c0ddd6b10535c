"""The scale-out backend: PostgreSQL through psycopg 3, shared by any number of managers.

Only the engines (and the wake-ups) differ from SQLite; every query is in
`dalsegno.store.sql`. Claims there select their rows `FOR UPDATE SKIP LOCKED`, and work on
one lock key is serialised with a transaction-scoped advisory lock (both render nothing on
SQLite, where a writer holds the whole file).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import URL, make_url

from dalsegno.model.errors import RefusedError
from dalsegno.store import POSTGRES_SCHEMES
from dalsegno.store.notify import check_channel
from dalsegno.store.sql import SQLStore

log = logging.getLogger("dalsegno.store")

DRIVER = "postgresql+psycopg"

POOL_SIZE = 5
MAX_OVERFLOW = 15  # an execution's writes and the claim loop burst; idle ones are closed
POOL_TIMEOUT = 30.0
POOL_RECYCLE = 1800  # seconds: reconnect before a proxy or firewall drops an idle socket
CONNECT_ARGS = {"connect_timeout": 10, "application_name": "dalsegno"}


def engine_url(url: str) -> URL:
    """The URL on the psycopg 3 driver; an escaped password (`%40` for `@`) is decoded."""
    parsed = make_url(url)
    if parsed.drivername not in POSTGRES_SCHEMES:
        msg = f"unsupported PostgreSQL URL (postgresql://USER@HOST:PORT/DB is supported): {url}"
        raise RefusedError(msg)
    return parsed.set(drivername=DRIVER)


def _engine(url: URL) -> Engine:
    return create_engine(
        url,
        isolation_level="READ COMMITTED",
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=POOL_RECYCLE,
        pool_pre_ping=True,  # a restarted server or a failover leaves dead sockets behind
        connect_args=CONNECT_ARGS,
    )


class PostgresStore(SQLStore):
    """PostgreSQL in READ COMMITTED, on one pool of psycopg connections.

    One pool serves both roles: PostgreSQL needs no write lock taken at BEGIN, so the two
    engines SQLite needs would only double the connections a manager holds. The read
    engine is the same pool with `postgresql_readonly`: a read transaction starts with
    `BEGIN READ ONLY` (no extra round trip), so a write on the read path fails loudly.
    """

    @classmethod
    def open(cls, url: str) -> PostgresStore:
        target = engine_url(url)
        write_engine = _engine(target)
        read_engine = write_engine.execution_options(postgresql_readonly=True)
        # What the store shows (the manager prints it) never holds the password.
        return cls(target.render_as_string(hide_password=True), write_engine, read_engine)

    def __init__(self, url: str, write_engine: Engine, read_engine: Engine) -> None:
        super().__init__(url, write_engine, read_engine)
        self._listener: psycopg.Connection[Any] | None = None
        self._listening: set[str] = set()
        self._listener_lock = threading.Lock()

    def close(self) -> None:
        with self._listener_lock:
            self._close_listener()
        super().close()

    # wake-ups: LISTEN/NOTIFY ------------------------------------------------------

    def notify(self, channel: str) -> None:
        """Wake the waiters on `channel` in every process (NOTIFY, sent at commit)."""
        with self._write() as conn:
            conn.execute(select(func.pg_notify(check_channel(channel), "")))

    def wait_for_notification(self, channels: Sequence[str], timeout: float) -> set[str]:
        """The channels notified since the last wait, waiting up to `timeout` seconds.

        An empty set is a timeout. The first wait on a channel subscribes to it (LISTEN on
        a connection of its own, outside the pool) and returns it at once. When the
        connection is lost, notifications may have been lost with it: the wait sleeps up
        to a second and returns every channel asked for, so the caller looks. One thread
        waits at a time; another one gives up after its timeout.
        """
        wanted = {check_channel(channel) for channel in channels}
        if not self._listener_lock.acquire(timeout=max(0.0, timeout)):
            return set()
        try:
            subscribed = self._listen(wanted)
            if subscribed:
                return subscribed
            assert self._listener is not None
            found = {n.channel for n in self._listener.notifies(timeout=timeout, stop_after=1)}
            if found:  # and whatever came with it
                found |= {n.channel for n in self._listener.notifies(timeout=0)}
            return found & wanted
        except psycopg.Error as exc:
            log.warning("listening for notifications failed (%s); reconnecting", exc)
            self._close_listener()
            time.sleep(min(max(0.0, timeout), 1.0))
            return wanted
        finally:
            self._listener_lock.release()

    def _listen(self, channels: set[str]) -> set[str]:
        """Subscribe to the channels not subscribed yet; returns those."""
        if self._listener is None or self._listener.closed:
            url = self._write_engine.url
            _, params = self._write_engine.dialect.create_connect_args(url)
            params.pop("context", None)  # SQLAlchemy's type adapters: this one reads no rows
            options: dict[str, Any] = {**params, **CONNECT_ARGS, "autocommit": True}
            self._listener = psycopg.connect(**options)
            self._listening = set()
        new = channels - self._listening
        for channel in sorted(new):
            self._listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._listening.add(channel)
        return new

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._listener, self._listening = None, set()
