"""The embedded backend: one SQLite file in WAL mode, durable at every commit."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from dalsegno.store.group_commit import GroupCommit
from dalsegno.store.sql import SQLStore

BUSY_TIMEOUT_MS = 30_000

# SQLite has one writer per file. Threads of one process that find its lock taken would wait
# in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries; queueing them on a
# lock of the process instead hands the file over the moment a commit ends. Other processes
# still meet in the busy handler. Within one store, concurrent writers share a transaction
# (`dalsegno.store.group_commit`).
_writers_lock = threading.Lock()
_writers: dict[str, threading.RLock] = {}


def _writer_of(database: str) -> threading.RLock:
    with _writers_lock:
        return _writers.setdefault(database, threading.RLock())


def _configure(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # The driver must not open transactions itself: we say BEGIN IMMEDIATE for writes,
        # so a writer takes the lock at the start and never fails to upgrade it later.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA cache_size = -8192")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the file in WAL mode (it stays so: later connections only read it).

    Switching needs the file to itself, and SQLite answers "database is locked" at once,
    without its busy handler, when another process opens the new file at the same moment:
    so the switch is tried again for as long as the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class SQLiteStore(SQLStore):
    """SQLite with WAL, `synchronous=FULL`, `BEGIN IMMEDIATE`, foreign keys and a busy timeout."""

    @classmethod
    def open(cls, url: str) -> SQLiteStore:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        write_engine = create_engine(url, connect_args=connect_args, pool_size=4)
        read_engine = create_engine(url, connect_args=connect_args, pool_size=8)
        _configure(write_engine, "BEGIN IMMEDIATE")
        _configure(read_engine, "BEGIN")
        store = cls(url, write_engine, read_engine)
        writer = _writer_of(str(Path(database or ":memory:").expanduser().resolve()))
        # concurrent writers of this store share a transaction and its fsync
        store._group = GroupCommit(write_engine.connect, writer)
        return store

    _group: GroupCommit

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._group.write() as conn:
            yield conn
