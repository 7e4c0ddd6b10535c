"""The embedded backend: one SQLite file in WAL mode, durable at every commit, watched for
being deleted, replaced or corrupt (`dalsegno.store.faults`)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from dalsegno.model.errors import StoreFailedError, StoreUnavailableError
from dalsegno.store.faults import (
    FileIdentity,
    Latch,
    is_corruption,
    marker_of,
    passing,
    quick_check,
    refuse_if_marked,
    sqlite_error,
)
from dalsegno.store.group_commit import GroupCommit
from dalsegno.store.retry import budget_left, retry_passing, within_budget
from dalsegno.store.sql import SQLStore

T = TypeVar("T")

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
        # A request waits for another process's lock no longer than its budget (then 503).
        left = budget_left()
        busy = BUSY_TIMEOUT_MS if left is None else max(1, min(BUSY_TIMEOUT_MS, int(left * 1000)))
        info = conn.connection.info
        if info.get("busy_timeout", BUSY_TIMEOUT_MS) != busy:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy}")
            info["busy_timeout"] = busy
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
    """SQLite with WAL, `synchronous=FULL`, `BEGIN IMMEDIATE`, foreign keys and a busy timeout.

    The file is created once (mode 0600, in a directory created 0700); every later
    connection opens that file only (`mode=rw`), so a deleted file is never silently
    replaced by a new, empty one. The file's identity is checked before every transaction
    and after every write, and an error that says corruption is confirmed with
    `quick_check`: either latches the store (`dalsegno.store.faults`).
    """

    retries_outages = True  # a full or read-only disk, a lock: `@retried` methods wait

    @classmethod
    def open(cls, url: str) -> SQLiteStore:
        path = Path(make_url(url).database or "").expanduser().absolute()
        refuse_if_marked(path)
        _create(path)
        identity = FileIdentity(path)
        latch = Latch(marker_of(path))

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(
                f"file:{quote(str(path))}?mode=rw",
                uri=True,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            changed = identity.changed()  # `mode=rw` opened whatever is at the path now
            if changed is not None:
                connection.close()
                raise latch.fail(changed)
            return connection

        write_engine = create_engine(url, creator=connect, pool_size=4)
        read_engine = create_engine(url, creator=connect, pool_size=8)
        _configure(write_engine, "BEGIN IMMEDIATE")
        _configure(read_engine, "BEGIN")
        store = cls(url, write_engine, read_engine)
        writer = _writer_of(str(path.resolve()))
        # concurrent writers of this store share a transaction and its fsync
        store._group = GroupCommit(write_engine.connect, writer)
        store._identity, store._latch = identity, latch
        return store

    _group: GroupCommit
    _identity: FileIdentity
    _latch: Latch

    def failure(self) -> str | None:
        """Why this store cannot be used any more, or None while it can."""
        with contextlib.suppress(StoreFailedError):
            self._watch()
        return self._latch.failure

    def _watch(self) -> None:
        """Refuse at once once the store failed; fail it when its file is not the one opened."""
        self._latch.check()
        changed = self._identity.changed()
        if changed is not None:
            raise self._latch.fail(changed)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._watch()
        with self._faults(), self._group.write() as conn:
            yield conn
        self._watch()  # a write into a file since deleted is not reported as done

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._watch()
        with self._faults(), super()._read() as conn:
            yield conn

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's errors that are faults of the store, as the errors callers know."""
        try:
            yield
        except (sqlite3.Error, exc.DBAPIError) as error:
            found = sqlite_error(error)
            if found is None:
                raise
            self._watch()  # a deleted or replaced file explains any error
            if is_corruption(found):
                problem = quick_check(self._identity.path)
                if problem is not None:
                    reason = f"the store file {self._identity.path} is corrupt ({problem})"
                    raise self._latch.fail(reason) from error
                msg = f"the store file reported corruption that quick_check does not find ({found})"
                raise StoreUnavailableError(msg) from error
            fault = passing(found)
            if fault is None:
                raise
            raise fault from error

    def _retry(
        self,
        call: Callable[[], T],
        what: Callable[[], str],
        recover: Callable[[], T] | None = None,
        deadline: float | None = None,
    ) -> T:
        """The policy of `@retried` methods: through a passing fault (a full or read-only
        disk, a lock), until `deadline` (default: the outage window). A write SQLite
        refused did nothing, so trying it again applies it once."""
        return retry_passing(call, what, within_budget(deadline))


def _create(path: Path) -> None:
    """Create the store file (and its directory) readable by this user only, once."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # SQLite makes its -wal and -shm files with the mode of this one.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
