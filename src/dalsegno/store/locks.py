"""Lock keys: an execution holds its key from creation to its end (but while `queued`);
when a holder ends, the oldest execution queued on the key becomes `pending`.

Who holds a key and who is promoted next is decided by one writer at a time (see
`serialise_key`), in the transaction that creates, takes up or ends an execution.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, update

from dalsegno.model.records import NewEvent
from dalsegno.model.states import LOCK_HOLDING_STATES, ExecutionState
from dalsegno.store import tables as t
from dalsegno.store.core import SQLBase
from dalsegno.store.statements import clock

_HOLDING = sorted(state.value for state in LOCK_HOLDING_STATES)

# The advisory lock class of lock keys on PostgreSQL ("ds"): the two-key space, apart from
# the single-key lock of migrations.
_LOCK_KEY_CLASS = 0x6473


def serialise_key(conn: Connection, lock_key: str | None) -> None:
    """Serialise work on one lock key until the transaction ends.

    Who holds a key and who is promoted next must be decided by one writer at a time, or
    two executions could both start, or a queued one be left behind. SQLite's writer
    already holds the whole file; PostgreSQL in READ COMMITTED needs a lock per key.
    No deadlock: holding the key, a writer locks only rows nobody runs (`pending`,
    `queued`), and takes the key before it locks such a row; an execution that ends
    locks its own running row first, which no holder of the key ever waits for.
    """
    if lock_key is not None and conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY_CLASS, func.hashtext(lock_key))))


def serialise_key_of(conn: Connection, execution_id: str) -> None:
    """`serialise_key` for the key of an execution whose row is locked next."""
    if conn.dialect.name == "postgresql":
        serialise_key(
            conn,
            conn.execute(
                select(t.executions.c.lock_key).where(t.executions.c.id == execution_id)
            ).scalar(),
        )


class LockKeys(SQLBase):
    """The queries of lock keys, for the subjects that create, take up or end executions."""

    def _lock_held(self, conn: Connection, lock_key: str) -> bool:
        """Whether an execution holds `lock_key`; the key stays serialised until commit."""
        return self._lock_holder(conn, lock_key) is not None

    def _lock_holder(
        self, conn: Connection, lock_key: str, other_than: str | None = None
    ) -> str | None:
        """The execution (but `other_than`) that holds `lock_key`; serialised until commit."""
        serialise_key(conn, lock_key)
        query = select(t.executions.c.id).where(
            t.executions.c.lock_key == lock_key, t.executions.c.status.in_(_HOLDING)
        )
        if other_than is not None:
            query = query.where(t.executions.c.id != other_than)
        found: str | None = conn.execute(query.limit(1)).scalar()
        return found

    def lock_holder(self, lock_key: str, other_than: str | None = None) -> str | None:
        """The execution (but `other_than`) that holds `lock_key` now, if any."""
        with self._read() as conn:
            query = select(t.executions.c.id).where(
                t.executions.c.lock_key == lock_key, t.executions.c.status.in_(_HOLDING)
            )
            if other_than is not None:
                query = query.where(t.executions.c.id != other_than)
            found: str | None = conn.execute(query.limit(1)).scalar()
        return found

    def _promote_queued(self, conn: Connection, execution_id: str) -> None:
        """The execution ended: the oldest one queued behind its lock key becomes pending."""
        lock_key = conn.execute(
            select(t.executions.c.lock_key).where(t.executions.c.id == execution_id)
        ).scalar()
        if lock_key is None or self._lock_held(conn, lock_key):
            return
        waiting = conn.execute(
            select(t.executions.c.id)
            .where(
                t.executions.c.lock_key == lock_key,
                t.executions.c.status == ExecutionState.QUEUED.value,
            )
            .order_by(t.executions.c.created_at, t.executions.c.id)
            .limit(1)
        ).scalar()
        if waiting is not None:
            conn.execute(
                update(t.executions)
                .where(
                    t.executions.c.id == waiting,
                    t.executions.c.status == ExecutionState.QUEUED.value,
                )
                .values(status=ExecutionState.PENDING.value)
            )
            self._insert_events(
                conn,
                waiting,
                [
                    NewEvent(
                        "lock_acquired", f"Lock '{lock_key}' is free: pending", created_at=clock()
                    )
                ],
            )
