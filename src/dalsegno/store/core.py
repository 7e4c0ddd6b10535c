"""What every subject of the SQL store shares: its two engines, the compiled statements,
the transactions, the lease check, and the writes every subject makes (events, attempt
ends, guarded task moves).

`SQLStore` (dalsegno.store.sql) is this base with one mixin per subject; a backend
subclasses it and overrides only how its engines are made and how it rides out faults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select, update

from dalsegno.model.errors import LeaseLostError, RefusedTransitionError
from dalsegno.model.records import (
    AttemptEnd,
    NewEvent,
    StoredGraph,
    SubgraphChange,
    SubgraphRecord,
    TaskChange,
)
from dalsegno.model.states import ExecutionState
from dalsegno.store import tables as t
from dalsegno.store.notify import check_channel, local_channels
from dalsegno.store.statements import (
    ATTEMPT_END,
    ATTEMPT_START,
    DEPENDENCY_INSERT,
    EVENT_INSERT,
    FENCE_READ,
    FENCE_RENEW,
    TASK_INSERT,
    TASK_UPDATE,
    TASKS_OF_EXECUTION,
    Compiled,
    event_rows,
    task_params,
)

T = TypeVar("T")


class SQLBase:
    """A store on two SQLAlchemy engines: one for writes, one for reads."""

    # Whether `@retried` methods go through `_retry` (a backend that rides out outages).
    retries_outages = False

    def __init__(self, url: str, write_engine: Engine, read_engine: Engine) -> None:
        self.url = url
        self._write_engine = write_engine
        self._read_engine = read_engine
        self._seen = threading.local()  # each waiting thread's counts per channel (SQLite)
        dialect = write_engine.dialect
        self._task_update = Compiled(TASK_UPDATE, dialect)
        self._attempt_start = Compiled(ATTEMPT_START, dialect)
        self._attempt_end = Compiled(ATTEMPT_END, dialect)
        self._event_insert = Compiled(EVENT_INSERT, dialect)
        self._fence_renew = Compiled(FENCE_RENEW, dialect)
        self._fence_read = Compiled(FENCE_READ, dialect)
        self._task_insert = Compiled(TASK_INSERT, dialect)
        self._tasks_of_execution = Compiled(TASKS_OF_EXECUTION, dialect)
        self._dependency_insert = Compiled(DEPENDENCY_INSERT, dialect)

    def close(self) -> None:
        self._write_engine.dispose()
        self._read_engine.dispose()

    def failure(self) -> str | None:
        """Why this store cannot be used any more (`dalsegno.store.faults`), or None."""
        return None

    # wake-ups (see dalsegno.store.notify) -----------------------------------------

    def notify(self, channel: str) -> None:
        """Wake the waiters on `channel`; on SQLite, those of this process only."""
        local_channels(self.url).notify(check_channel(channel))

    def wait_for_notification(self, channels: Sequence[str], timeout: float) -> set[str]:
        """The channels notified since the last wait, waiting up to `timeout` seconds.

        An empty set is a timeout. Never the only wake-up: poll on the timeout as well.
        """
        wanted = [check_channel(channel) for channel in channels]
        seen = self._seen.__dict__.setdefault("counts", {})
        return local_channels(self.url).wait(seen, wanted, timeout)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._read_engine.connect() as conn:
            yield conn

    def _read_row(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of one read statement (attributes by column name), or None.

        For reads every request makes: PostgreSQL sends it alone, in one round trip."""
        with self._read() as conn:
            return conn.execute(statement, params).first()

    def _retry(
        self,
        call: Callable[[], T],
        what: Callable[[], str],
        recover: Callable[[], T] | None = None,
        deadline: float | None = None,
    ) -> T:
        """The retry policy of `@retried` methods: none here (see `retries_outages`)."""
        return call()

    def _fence(
        self,
        conn: Connection,
        execution_id: str,
        lease_token: int,
        lease_expires_at: float | None = None,
    ) -> ExecutionState:
        """Check (and renew) the lease inside the transaction; refuse if it was taken."""
        cursor = conn.connection.cursor()
        values = {"b_id": execution_id, "b_token": lease_token, "b_expires": lease_expires_at}
        statement = self._fence_read if lease_expires_at is None else self._fence_renew
        row = statement.run(cursor, values).fetchone()
        if row is None:
            msg = f"lease of execution {execution_id} lost: token {lease_token} is no longer valid"
            raise LeaseLostError(msg)
        return ExecutionState(row[0])

    def _insert_events(
        self, conn: Connection, execution_id: str, events: Sequence[NewEvent]
    ) -> None:
        if events:
            self._event_insert.run_many(conn.connection.cursor(), event_rows(execution_id, events))

    def _end_attempts(self, conn: Connection, ends: Sequence[AttemptEnd]) -> None:
        if ends:
            self._attempt_end.run_many(
                conn.connection.cursor(),
                [
                    {
                        "b_task_id": end.task_id,
                        "b_number": end.number,
                        "b_outcome": end.outcome,
                        "b_ended_at": end.ended_at,
                        "b_error": end.error,
                    }
                    for end in ends
                ],
            )

    def _apply_task_changes(
        self, conn: Connection, execution_id: str, changes: Sequence[TaskChange]
    ) -> None:
        if not changes:
            return
        params = [task_params(change, execution_id) for change in changes]
        changed = self._task_update.run_many(conn.connection.cursor(), params)
        if changed != len(params):
            refused = [
                change.task_id
                for change in changes
                if conn.execute(
                    select(t.tasks.c.status).where(t.tasks.c.id == change.task_id)
                ).scalar_one_or_none()
                != change.status.value
            ]
            msg = f"the store refused task updates that raced with another writer: {refused}"
            raise RefusedTransitionError(msg)

    def _apply_subgraph_changes(self, conn: Connection, changes: Sequence[SubgraphChange]) -> None:
        s = t.subgraphs.c
        for change in changes:
            moved = conn.execute(
                update(t.subgraphs)
                .where(
                    s.graph_id == change.graph_id,
                    s.key == change.key,
                    s.status == change.expected,
                )
                .values(
                    status=change.status,
                    retries=change.retries,
                    next_run_at=change.next_run_at,
                    error=change.error,
                )
            ).rowcount
            if moved != 1:
                msg = f"subgraph '{change.key}': refused move from {change.expected}"
                raise RefusedTransitionError(msg)


def load_subgraphs(conn: Connection, graphs: dict[int, StoredGraph]) -> None:
    """Add their subgraphs and subgraph edges to `graphs` (by id)."""
    s = t.subgraphs.c
    for row in conn.execute(
        select(t.subgraphs).where(s.graph_id.in_(list(graphs))).order_by(s.graph_id)
    ):
        graphs[row.graph_id].subgraphs.append(
            SubgraphRecord(
                row.key,
                row.parent,
                row.max_retries,
                row.retry_interval,
                row.on_failure,
                row.status,
                row.retries,
                row.next_run_at,
                row.error,
            )
        )
    e = t.subgraph_edges.c
    for row in conn.execute(select(t.subgraph_edges).where(e.graph_id.in_(list(graphs)))):
        graphs[row.graph_id].node_edges.append((row.node, row.depends_on))
