"""The scale-out backend: PostgreSQL through psycopg 3, shared by any number of managers.

Every query is in `dalsegno.store.sql` and its subject modules. Claims there select their
rows `FOR UPDATE SKIP LOCKED`, and work on one lock key is serialised with a
transaction-scoped advisory lock (both render nothing on SQLite, where a writer holds the
whole file). What differs here: the engines, wake-ups over LISTEN/NOTIFY
(`dalsegno.store.listener`), and the store methods marked `@retried` ride out a server
restart (`dalsegno.store.outage`).
"""

from __future__ import annotations

import select as os_select
import threading
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, Text, cast, create_engine, event, exc, func, select
from sqlalchemy.engine import URL, make_url

from dalsegno.model.errors import RefusedError
from dalsegno.model.records import ExecutionSettings
from dalsegno.model.states import CANCELLING_STATES, ExecutionState
from dalsegno.store import POSTGRES_SCHEMES
from dalsegno.store.base import (
    AttemptEnd,
    Batch,
    Claim,
    ExecutionRecord,
    LeaseOwner,
    NewEvent,
    SubgraphChange,
    TaskChange,
)
from dalsegno.store.listener import Listener
from dalsegno.store.notify import PENDING, check_channel
from dalsegno.store.outage import Outcome, passing_fault, retrying
from dalsegno.store.pgbulk import Bulk
from dalsegno.store.pgdriver import autocommit, named
from dalsegno.store.retry import retried, within_budget
from dalsegno.store.sql import SQLStore
from dalsegno.store.statements import (
    ATTEMPT_END,
    ATTEMPT_START,
    EVENT_INSERT,
    FENCE_READ,
    FENCE_RENEW,
    TASK_UPDATE,
    Compiled,
)

T = TypeVar("T")

DRIVER = "postgresql+psycopg"

POOL_SIZE = 5
MAX_OVERFLOW = 15  # an execution's writes and the claim loop burst; idle ones are closed
POOL_TIMEOUT = 30.0
POOL_RECYCLE = 1800  # seconds: reconnect before a proxy or firewall drops an idle socket
# Milliseconds. A manager frozen inside a transaction (SIGSTOP, a hung VM) would hold its
# rows, and a takeover skips locked rows: the server ends such a session after a few
# seconds. A statement never waits long for a lock another session holds (a `LOCK TABLE`,
# a stuck migration), nor runs for ever: the server cancels it, and the call is retried as
# through an outage (`dalsegno.store.outage`), so a stall is a 503, not a hang.
IDLE_IN_TRANSACTION_TIMEOUT = 5000
LOCK_TIMEOUT = 2000
STATEMENT_TIMEOUT = 15000
SESSION_OPTIONS = (
    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT} "
    f"-c lock_timeout={LOCK_TIMEOUT} -c statement_timeout={STATEMENT_TIMEOUT}"
)
CONNECT_ARGS = {
    "connect_timeout": 10,
    "application_name": "dalsegno",
    "options": SESSION_OPTIONS,
}


def engine_url(url: str) -> URL:
    """The URL on the psycopg 3 driver; an escaped password (`%40` for `@`) is decoded."""
    parsed = make_url(url)
    if parsed.drivername not in POSTGRES_SCHEMES:
        msg = f"unsupported PostgreSQL URL (postgresql://USER@HOST:PORT/DB is supported): {url}"
        raise RefusedError(msg)
    return parsed.set(drivername=DRIVER)


def _engine(url: URL) -> Engine:
    # `?options=-c ...` in the store URL comes after ours, so an operator's setting wins.
    given = url.query.get("options")
    options = f"{SESSION_OPTIONS} {given}" if isinstance(given, str) and given else SESSION_OPTIONS
    engine = create_engine(
        url.difference_update_query(["options"]),
        isolation_level="READ COMMITTED",
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=POOL_RECYCLE,
        connect_args={**CONNECT_ARGS, "options": options},
    )
    event.listen(engine, "checkout", _pre_ping)
    return engine


def _pre_ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection is checked before use, like `pool_pre_ping`, without its round
    trip: an idle connection has nothing to read unless the server closed it (a restart, a
    terminated backend: its last words, then EOF). The pool then connects anew. A socket
    cut without a word is found by the statement that fails, which is retried."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("the connection is closed")
    readable, _, _ = os_select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise exc.DisconnectionError("the server closed the connection while it was idle")


class _Fenced:
    """A lease check of `dalsegno.store.statements` whose row also holds the transaction's id,
    kept for `_write` while a write is tracked (the row it returns is the one read)."""

    def __init__(self, statement: Any, dialect: Any, outcome: Outcome) -> None:
        self._compiled = Compiled(statement, dialect)
        self._outcome = outcome

    def run(self, cursor: Any, values: dict[str, Any]) -> _Fenced:
        self._row = self._compiled.run(cursor, values).fetchone()
        if self._row is not None and self._outcome.tracking:
            self._outcome.record(self._row[1])
        return self

    def fetchone(self) -> Any:
        return self._row


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

    retries_outages = True  # `@retried` methods ride out a server restart

    def __init__(self, url: str, write_engine: Engine, read_engine: Engine) -> None:
        super().__init__(url, write_engine, read_engine)
        self._listener = Listener(self._listen_connection)
        self._outcome = Outcome()
        self._pipelined = threading.local()  # a batch is being written in pipeline mode
        self._closed = threading.Event()
        # A batch's rows of one kind in one statement each (`dalsegno.store.pgbulk`).
        dialect, bulk = write_engine.dialect, typing.cast(Any, Bulk)  # Bulk stands in for Compiled
        self._task_update = bulk(TASK_UPDATE, dialect, self._task_update, ["b_id"], True)
        self._attempt_end = bulk(ATTEMPT_END, dialect, self._attempt_end, ["b_task_id", "b_number"])
        self._attempt_start = bulk(ATTEMPT_START, dialect, self._attempt_start)
        self._event_insert = bulk(EVENT_INSERT, dialect, self._event_insert)
        # The lease check of a batch also reads the transaction's id (no extra round trip).
        xid = cast(func.pg_current_xact_id(), Text)
        fenced = typing.cast(Any, _Fenced)
        self._fence_renew = fenced(FENCE_RENEW.returning(xid), dialect, self._outcome)
        self._fence_read = fenced(FENCE_READ.add_columns(xid), dialect, self._outcome)
        self._dialect = dialect
        self._alone: dict[Any, str] = {}  # `_read_row`'s statements, compiled

    def close(self) -> None:
        self._closed.set()  # a thread still retrying gives up: no connection outlives this
        self._listener.close()
        super().close()

    # wake-ups: LISTEN/NOTIFY ------------------------------------------------------

    @retried("notifying {channel}")
    def notify(self, channel: str) -> None:
        """Wake the waiters on `channel` in every process (NOTIFY, sent at commit)."""
        check_channel(channel)
        with self._write() as conn:
            conn.execute(select(func.pg_notify(channel, "")))

    def wait_for_notification(self, channels: Sequence[str], timeout: float) -> set[str]:
        """The channels notified since this thread's last wait, waiting up to `timeout`.

        An empty set is a timeout. The first wait of a thread on a channel returns it at
        once (with LISTEN in place). Any number of threads may wait: the store has one
        LISTEN connection, outside the pool, that fans out to them. When it is lost,
        every channel is returned to every waiter (notifications may have been lost).
        """
        wanted = [check_channel(channel) for channel in channels]
        return self._listener.wait(wanted, timeout)

    def _listen_connection(self) -> psycopg.Connection[Any]:
        url = self._write_engine.url
        _, params = self._write_engine.dialect.create_connect_args(url)
        params.pop("context", None)  # SQLAlchemy's type adapters: this one reads no rows
        return psycopg.connect(**{**params, **CONNECT_ARGS, "autocommit": True})

    def _wake_managers(self, conn: Connection | None = None) -> None:
        """Work a manager may claim appeared: NOTIFY, in `conn`'s transaction if given."""
        if conn is None:
            self.notify(PENDING)
        else:
            conn.execute(select(func.pg_notify(PENDING, "")))

    # writes that outlive an outage ---------------------------------------------------

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """A lost connection, a stall or a refused connection, as the error callers know
        (`StoreUnavailableError`); `@retried` calls try again on it."""
        try:
            yield
        except Exception as error:
            fault = passing_fault(error)
            if fault is None or fault is error:
                raise
            raise fault from error

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._faults(), super()._read() as conn:
            yield conn
            # A read ends with COMMIT, not the pool's ROLLBACK on return: at a ROLLBACK,
            # psycopg forgets every statement it prepared on the connection (and sends
            # DEALLOCATE ALL), so none stayed prepared past the connection's next read.
            if conn.in_transaction():
                conn.commit()

    def _read_row(self, statement: Any, params: dict[str, Any]) -> Any:
        """One statement alone, in autocommit: one round trip, not three (BEGIN READ ONLY,
        the statement, COMMIT). Its SQL is compiled once per statement."""
        sql = self._alone.get(statement)
        if sql is None:
            sql = self._alone[statement] = str(statement.compile(dialect=self._dialect))
        with self._faults(), autocommit(self._write_engine) as pg:
            return named(pg).execute(sql, params).fetchone()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._faults(), self._write_engine.begin() as conn:
            if getattr(self._pipelined, "on", False):
                # A batch's statements wait for no answer but the lease check's and the
                # task updates' count: the rest goes to the server together.
                assert conn.connection.dbapi_connection is not None
                with conn.connection.dbapi_connection.pipeline():
                    yield conn
            else:
                yield conn
            if self._outcome.tracking and self._outcome.xid is None and conn.in_transaction():
                # Read before COMMIT: if the COMMIT is cut off, this tells what became of it.
                xid = select(cast(func.pg_current_xact_id(), Text))
                self._outcome.record(conn.execute(xid).scalar())

    def _retry(
        self,
        call: Callable[[], T],
        what: Callable[[], str],
        recover: Callable[[], T] | None = None,
        deadline: float | None = None,
    ) -> T:
        """The policy of `@retried` store methods (`dalsegno.store.retry`): through an
        outage, until `deadline` (default: the outage window)."""
        return retrying(
            self._write_engine,
            self._outcome,
            call,
            within_budget(deadline),
            what,
            recover,
            self._closed.is_set,
        )

    def apply(self, batch: Batch) -> ExecutionState:
        """`SQLStore.apply` in pipeline mode, but for a move of the execution (its end) or
        of a subgraph or of node instances: rare writes that go through SQLAlchemy, which
        reads counts as it goes."""
        self._pipelined.on = (
            batch.execution is None
            and not batch.subgraphs
            and not batch.instances
            and not batch.instance_starts
        )
        try:
            return super().apply(batch)
        finally:
            self._pipelined.on = False

    def claim(
        self,
        claim: Claim,
        resets: Sequence[TaskChange],
        events: Sequence[NewEvent],
        attempt_ends: Sequence[AttemptEnd] = (),
        subgraph_resets: Sequence[SubgraphChange] = (),
    ) -> ExecutionRecord | None:
        claimed = super().claim(claim, resets, events, attempt_ends, subgraph_resets)
        if claimed is not None and claim.owner is None:
            self._wake_managers()  # handed over (a resume): whichever manager is free
        return claimed

    def release(self, execution_id: str, lease_token: int) -> bool:
        released = super().release(execution_id, lease_token)
        if released:
            self._wake_managers()  # a manager takes it over at once
        return released

    # wake-ups of the managers on the writes that make work claimable ---------------

    def create_execution(
        self,
        workflow: str,
        params: dict[str, Any],
        status: ExecutionState,
        owner: LeaseOwner | None,
        lease_expires_at: float | None,
        events: Sequence[NewEvent],
        lock_key: str | None = None,
        settings: ExecutionSettings | None = None,
    ) -> ExecutionRecord:
        record = super().create_execution(
            workflow, params, status, owner, lease_expires_at, events, lock_key, settings
        )
        if record.status is ExecutionState.PENDING:
            self._wake_managers()
        return record

    def request_cancel(
        self, execution_id: str, target: ExecutionState, events: Sequence[NewEvent]
    ) -> ExecutionRecord | None:
        record = super().request_cancel(execution_id, target, events)
        if record is not None and record.status in CANCELLING_STATES and not record.lease_owner:
            self._wake_managers()  # nobody runs it: a manager finishes the cancel
        return record

    def _promote_queued(self, conn: Connection, execution_id: str) -> None:
        """An execution ended or was cancelled: one queued behind its lock may be pending."""
        super()._promote_queued(conn, execution_id)
        self._wake_managers(conn)
