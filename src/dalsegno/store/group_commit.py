"""Group commit for the writers of one SQLite store: concurrent writes share a commit.

SQLite has one writer per file and every commit waits for an fsync. When agents' calls,
heartbeats and an execution's owner write at once, each taking the lock and paying its
own fsync in turn makes the fsync the bound of the whole manager. Here the first writer
opens a transaction (`BEGIN IMMEDIATE`) and becomes the group's leader; writers that
arrive while it is open run their work in the same transaction, one at a time, each in a
SAVEPOINT of its own, so one that fails rolls back its own work only; when no writer is
left waiting (or the group is large or old enough), the leader commits once for all. The
leader's own work runs first, alone in the transaction, so it needs no savepoint: if it
fails, the transaction is rolled back before anyone joins it (two statements fewer for
every write that finds no group open, which is most of them when writers come one by one).

A writer returns only once the commit that holds its work is durable, as with a
transaction of its own; if that commit fails, every writer of the group gets the error.
A write nested in another on the same thread runs in a savepoint of the same group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import Connection, RootTransaction

from dalsegno.model.errors import StoreUnavailableError
from dalsegno.store.retry import budget_left

# A group commits when nobody waits to join, or at this many writes or seconds: a steady
# stream of writers never keeps a leader from committing.
MAX_WRITES = 64
MAX_AGE = 0.02


class _Group:
    __slots__ = ("began", "conn", "done", "error", "transaction", "writes")

    def __init__(self, conn: Connection, transaction: RootTransaction) -> None:
        self.conn = conn
        self.transaction = transaction
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.writes = 0
        self.began = time.monotonic()


class GroupCommit:
    """The writes of one store: `write()` is its `_write`.

    `connect` opens a write connection; `lock` is the process's lock of the file (held by
    the leader from BEGIN to COMMIT), shared with other stores of the same file.
    """

    def __init__(self, connect: Callable[[], Connection], lock: threading.RLock) -> None:
        self._connect = connect
        self._lock = lock
        self._state = threading.Condition()
        self._group: _Group | None = None
        self._waiting = 0  # writers waiting for their turn
        self._turn: int | None = None  # the thread whose work runs on the connection now

    @contextmanager
    def write(self) -> Iterator[Connection]:
        if self._turn == threading.get_ident():  # nested in this thread's own write
            with self._savepoint(self._current()) as conn:
                yield conn
            return
        group, leader = self._take_turn()
        error: BaseException | None = None
        try:
            if leader:  # alone in the transaction so far: it needs no savepoint of its own
                yield group.conn
            else:
                with self._savepoint(group.conn) as conn:
                    yield conn
        except BaseException as exc:  # noqa: BLE001 - re-raised once the group is settled
            error = exc
        finally:
            if leader and error is not None:
                self._end(group, commit=False)  # its work is all the group holds: undone
            else:
                self._pass_turn(group)
        if leader:
            if error is None:
                self._commit(group)
        else:
            group.done.wait()
        if error is not None:
            raise error
        if group.error is not None:
            raise group.error

    def _current(self) -> Connection:
        assert self._group is not None
        return self._group.conn

    @staticmethod
    @contextmanager
    def _savepoint(conn: Connection) -> Iterator[Connection]:
        savepoint = conn.begin_nested()
        try:
            yield conn
        except BaseException:
            with suppress(Exception):
                savepoint.rollback()
            raise
        savepoint.commit()

    def _take_turn(self) -> tuple[_Group, bool]:
        """Wait until no other writer's work runs; join the open group, or open one."""
        left = budget_left()  # a request waits no longer than its budget (then 503)
        deadline = None if left is None else time.monotonic() + left
        with self._state:
            self._waiting += 1
            while self._turn is not None:
                if deadline is None:
                    self._state.wait()
                    continue
                if time.monotonic() >= deadline:
                    self._waiting -= 1
                    msg = "the store file is locked: another write held it too long"
                    raise StoreUnavailableError(msg)
                self._state.wait(deadline - time.monotonic())
            self._waiting -= 1
            self._turn = threading.get_ident()
            group = self._group
            if group is not None:
                return group, False
        try:
            self._lock.acquire()
            try:
                conn = self._connect()
                try:
                    group = _Group(conn, conn.begin())
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                self._lock.release()
                raise
        except BaseException:
            with self._state:
                self._turn = None
                self._state.notify_all()
            raise
        with self._state:
            self._group = group
        return group, True

    def _pass_turn(self, group: _Group) -> None:
        with self._state:
            group.writes += 1
            self._turn = None
            self._state.notify_all()

    def _commit(self, group: _Group) -> None:
        """The leader: let waiting writers join, then commit once and release the file."""
        with self._state:
            while (self._waiting or self._turn is not None) and not self._full(group):
                self._state.wait(MAX_AGE)
            while self._turn is not None:  # a writer of this group finishes its work
                self._state.wait()
        self._end(group, commit=True)

    def _end(self, group: _Group, commit: bool) -> None:
        """Commit the group (or roll back a leader's failed work, before anyone joined),
        release the file, and let the next writer open the next group."""
        with self._state:
            # the turn is the commit's; the next writer opens the next group (and waits
            # for the file's lock until this commit is done)
            self._group = None
            self._turn = threading.get_ident()
        try:
            if commit:
                group.transaction.commit()
            else:
                group.transaction.rollback()
        except BaseException as exc:  # noqa: BLE001 - every writer of the group gets it
            group.error = exc
            with suppress(Exception):
                group.transaction.rollback()
        finally:
            with suppress(Exception):
                group.conn.close()
            self._lock.release()
            with self._state:
                self._turn = None
                self._state.notify_all()
            group.done.set()

    @staticmethod
    def _full(group: _Group) -> bool:
        return group.writes >= MAX_WRITES or time.monotonic() - group.began >= MAX_AGE
