"""The embedded backend: one SQLite file in WAL mode, durable at every commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from dalsegno.store.sql import SQLStore

BUSY_TIMEOUT_MS = 30_000


def _configure(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # The driver must not open transactions itself: we say BEGIN IMMEDIATE for writes,
        # so a writer takes the lock at the start and never fails to upgrade it later.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA cache_size = -8192")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


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
        return cls(url, write_engine, read_engine)
