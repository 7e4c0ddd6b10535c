"""The store on SQLAlchemy Core: every query dalsegno runs is named here.

Backends subclass `SQLStore` and override only how their engines are made.
"""

from __future__ import annotations

import json
import operator
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, func, insert, null, select, update

from dalsegno.model.errors import LeaseLostError, RefusedTransitionError
from dalsegno.model.states import (
    ACTIVE_STATES,
    CANCELLING_STATES,
    EXECUTION_END_STATES,
    ExecutionState,
    TaskState,
    can_move_execution,
    can_move_task,
    execution_sources,
    task_path_sources,
)
from dalsegno.store import tables as t
from dalsegno.store.agents import AgentQueue
from dalsegno.store.base import (
    AttemptEnd,
    AttemptRecord,
    Batch,
    Claim,
    EventRecord,
    ExecutionRecord,
    LeaseOwner,
    NewEvent,
    NewTask,
    StoredGraph,
    TaskChange,
    TaskRecord,
)
from dalsegno.store.notify import check_channel, local_channels
from dalsegno.store.reads import StoreReads, attempt_of

_TASK_UPDATE = (
    update(t.tasks)
    .where(
        t.tasks.c.id == bindparam("b_id"),
        t.tasks.c.execution_id == bindparam("b_execution_id"),
        t.tasks.c.status == bindparam("b_expected"),
    )
    .values(
        status=bindparam("b_status"),
        retries=bindparam("b_retries"),
        attempts=bindparam("b_attempts"),
        error=bindparam("b_error"),
        result=bindparam("b_result"),
        next_run_at=bindparam("b_next_run_at"),
        started_at=bindparam("b_started_at"),
        ended_at=bindparam("b_ended_at"),
        # the owner's every write ends an agent's hold on the task (dalsegno.store.agents)
        holder=null(),
        attempt_id=null(),
        claimed_at=null(),
    )
)

_ATTEMPT_END = (
    update(t.attempts)
    .where(
        t.attempts.c.task_id == bindparam("b_task_id"),
        t.attempts.c.number == bindparam("b_number"),
        t.attempts.c.outcome == "running",
    )
    .values(
        outcome=bindparam("b_outcome"),
        ended_at=bindparam("b_ended_at"),
        error=bindparam("b_error"),
    )
)


# A manager-side task is handed to a free worker: its `sent` and `started` commit together.
_DISPATCH_SOURCES = task_path_sources((TaskState.SENT, TaskState.STARTED))


_FENCE_RENEW = (
    update(t.executions)
    .where(
        t.executions.c.id == bindparam("b_id"),
        t.executions.c.lease_token == bindparam("b_token"),
        t.executions.c.lease_host.is_not(None),
    )
    .values(lease_expires_at=bindparam("b_expires"))
    .returning(t.executions.c.status)
)
_FENCE_READ = select(t.executions.c.status).where(
    t.executions.c.id == bindparam("b_id"),
    t.executions.c.lease_token == bindparam("b_token"),
    t.executions.c.lease_host.is_not(None),
)


def _insert_of(table: Any, *skip: str) -> Any:
    """An INSERT naming every column but `skip` (an id the database assigns)."""
    return insert(table).values(
        {column.name: bindparam(column.name) for column in table.columns if column.name not in skip}
    )


# the agent-queue columns (dalsegno.store.agents) start empty
_AGENT_TASK_COLUMNS = ("holder", "attempt_id", "claimed_at")
_AGENT_ATTEMPT_COLUMNS = tuple(c.name for c in t.attempts.columns if c.name.startswith("report"))
_ATTEMPT_START = _insert_of(t.attempts, "ended_at", "error", "attempt_id", *_AGENT_ATTEMPT_COLUMNS)
_EVENT_INSERT = _insert_of(t.events, "id")
_TASK_INSERT = _insert_of(
    t.tasks, "id", "error", "result", "next_run_at", "started_at", "ended_at", *_AGENT_TASK_COLUMNS
)
_DEPENDENCY_INSERT = _insert_of(t.dependencies)


def _now() -> float:
    return time.time()


# The advisory lock class of lock keys on PostgreSQL ("ds"): the two-key space, apart from
# the single-key lock of migrations.
_LOCK_KEY_CLASS = 0x6473


def _serialise_key(conn: Connection, lock_key: str | None) -> None:
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


def _serialise_key_of(conn: Connection, execution_id: str) -> None:
    """`_serialise_key` for the key of an execution whose row is locked next."""
    if conn.dialect.name == "postgresql":
        _serialise_key(
            conn,
            conn.execute(
                select(t.executions.c.lock_key).where(t.executions.c.id == execution_id)
            ).scalar(),
        )


class _Compiled:
    """A statement compiled once for a dialect, run on the driver's cursor.

    The hot path (a running execution's writes) skips SQLAlchemy's per-call work: each
    batch is a handful of `executemany` calls on one raw cursor, inside the transaction
    SQLAlchemy opened (BEGIN IMMEDIATE on SQLite).
    """

    __slots__ = ("_getter", "defaults", "names", "positional", "sql")

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.names = list(compiled.positiontup or []) if self.positional else []
        self.defaults = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.value is not None
        }
        getter = operator.itemgetter(*self.names) if self.names else None
        if len(self.names) == 1:
            self._getter: Callable[[dict[str, Any]], Any] | None = lambda values: (
                values[self.names[0]],
            )
        else:
            self._getter = getter

    def row(self, values: dict[str, Any]) -> Any:
        """The driver's parameters for one row; every name must be in `values`."""
        merged = {**self.defaults, **values} if self.defaults else values
        if self._getter is not None:
            return self._getter(merged)
        return merged

    def run(self, cursor: Any, values: dict[str, Any]) -> Any:
        cursor.execute(self.sql, self.row(values))
        return cursor

    def run_many(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> int:
        cursor.executemany(self.sql, [self.row(values) for values in rows])
        return int(cursor.rowcount)


def _task_params(change: TaskChange, execution_id: str) -> dict[str, Any]:
    if not can_move_task(change.expected, change.status) and not (
        change.status is TaskState.STARTED and change.expected in _DISPATCH_SOURCES
    ):
        msg = f"task {change.task_id}: {change.expected} -> {change.status} is not a listed move"
        raise RefusedTransitionError(msg)
    return {
        "b_id": change.task_id,
        "b_execution_id": execution_id,
        "b_expected": change.expected.value,
        "b_status": change.status.value,
        "b_retries": change.retries,
        "b_attempts": change.attempts,
        "b_error": change.error,
        "b_result": change.result_json,
        "b_next_run_at": change.next_run_at,
        "b_started_at": change.started_at,
        "b_ended_at": change.ended_at,
    }


def _event_rows(execution_id: str, events: Sequence[NewEvent]) -> list[dict[str, Any]]:
    now = _now()
    return [
        {
            "execution_id": execution_id,
            "graph": event.graph,
            "task_key": event.task_key,
            "type": event.type,
            "level": event.level,
            "message": event.message,
            "created_at": event.created_at or now,
        }
        for event in events
    ]


def _execution(row: Row[Any]) -> ExecutionRecord:
    owner = None
    if row.lease_host is not None:
        owner = LeaseOwner(row.lease_host, row.lease_pid, row.lease_proc_start or "")
    return ExecutionRecord(
        id=row.id,
        workflow=row.workflow,
        status=ExecutionState(row.status),
        params=json.loads(row.params),
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        lease_owner=owner,
        lease_expires_at=row.lease_expires_at,
        lease_token=row.lease_token,
        lock_key=row.lock_key,
    )


# Executions that hold their lock key: every state but the end states and `queued`.
_HOLDING = [
    state.value
    for state in ExecutionState
    if state not in (ExecutionState.QUEUED, *EXECUTION_END_STATES)
]


_TASK_STATES = {state.value: state for state in TaskState}
_TASK_COLUMNS = (
    t.tasks.c.id,
    t.tasks.c.execution_id,
    t.tasks.c.graph_id,
    t.tasks.c.key,
    t.tasks.c.operation,
    t.tasks.c.agent,
    t.tasks.c.kwargs,
    t.tasks.c.max_retries,
    t.tasks.c.retry_interval,
    t.tasks.c.timeout,
    t.tasks.c.status,
    t.tasks.c.retries,
    t.tasks.c.error,
    t.tasks.c.result,
    t.tasks.c.attempts,
    t.tasks.c.next_run_at,
    t.tasks.c.started_at,
    t.tasks.c.ended_at,
)
_TASKS_OF_EXECUTION = (
    select(*_TASK_COLUMNS)
    .where(t.tasks.c.execution_id == bindparam("b_execution_id"))
    .order_by(t.tasks.c.id)
)


class SQLStore(StoreReads, AgentQueue):
    """A `Store` on two SQLAlchemy engines: one for writes, one for reads."""

    def __init__(self, url: str, write_engine: Engine, read_engine: Engine) -> None:
        self.url = url
        self._write_engine = write_engine
        self._read_engine = read_engine
        self._seen = threading.local()  # each waiting thread's counts per channel (SQLite)
        dialect = write_engine.dialect
        self._task_update = _Compiled(_TASK_UPDATE, dialect)
        self._attempt_start = _Compiled(_ATTEMPT_START, dialect)
        self._attempt_end = _Compiled(_ATTEMPT_END, dialect)
        self._event_insert = _Compiled(_EVENT_INSERT, dialect)
        self._fence_renew = _Compiled(_FENCE_RENEW, dialect)
        self._fence_read = _Compiled(_FENCE_READ, dialect)
        self._task_insert = _Compiled(_TASK_INSERT, dialect)
        self._tasks_of_execution = _Compiled(_TASKS_OF_EXECUTION, dialect)
        self._dependency_insert = _Compiled(_DEPENDENCY_INSERT, dialect)

    def close(self) -> None:
        self._write_engine.dispose()
        self._read_engine.dispose()

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

    # executions -----------------------------------------------------------------

    def create_execution(
        self,
        workflow: str,
        params: dict[str, Any],
        status: ExecutionState,
        owner: LeaseOwner | None,
        lease_expires_at: float | None,
        events: Sequence[NewEvent],
        lock_key: str | None = None,
    ) -> ExecutionRecord:
        """Insert an execution; with a lock key another execution holds, it is `queued`.

        A queued execution has no owner yet: it becomes `pending` when the holder ends.
        """
        now = _now()
        execution_id = uuid.uuid4().hex
        row = {
            "id": execution_id,
            "workflow": workflow,
            "params": json.dumps(params),
            "status": status.value,
            "created_at": now,
            "started_at": now if status is ExecutionState.STARTED else None,
            "lease_host": owner.host if owner else None,
            "lease_pid": owner.pid if owner else None,
            "lease_proc_start": owner.proc_start if owner else None,
            "lease_expires_at": lease_expires_at,
            "lease_token": 1 if owner else 0,
            "lock_key": lock_key,
        }
        with self._write() as conn:
            if lock_key is not None and self._lock_held(conn, lock_key):
                row.update(
                    status=ExecutionState.QUEUED.value,
                    started_at=None,
                    lease_host=None,
                    lease_pid=None,
                    lease_proc_start=None,
                    lease_expires_at=None,
                    lease_token=0,
                )
                queued = NewEvent(
                    "lock_waiting", f"Queued: lock '{lock_key}' is held", created_at=_now()
                )
                events = [*events, queued]
            conn.execute(insert(t.executions), row)
            self._insert_events(conn, execution_id, events)
        record = self.get_execution(execution_id)
        assert record is not None
        return record

    def _lock_held(self, conn: Connection, lock_key: str) -> bool:
        """Whether an execution holds `lock_key`; the key stays serialised until commit."""
        _serialise_key(conn, lock_key)
        return (
            conn.execute(
                select(t.executions.c.id)
                .where(t.executions.c.lock_key == lock_key, t.executions.c.status.in_(_HOLDING))
                .limit(1)
            ).first()
            is not None
        )

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
                        "lock_acquired", f"Lock '{lock_key}' is free: pending", created_at=_now()
                    )
                ],
            )

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.executions).where(t.executions.c.id == execution_id)
            ).first()
        return None if row is None else _execution(row)

    def find_execution_ids(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._read() as conn:
            rows = conn.execute(
                select(t.executions.c.id)
                .where(t.executions.c.id.like(escaped + "%", escape="\\"))
                .limit(2)
            ).all()
        return [row.id for row in rows]

    def list_executions(self, status: ExecutionState | None = None) -> list[ExecutionRecord]:
        query = select(t.executions).order_by(
            t.executions.c.created_at.desc(), t.executions.c.id.desc()
        )
        if status is not None:
            query = query.where(t.executions.c.status == status.value)
        with self._read() as conn:
            return [_execution(row) for row in conn.execute(query)]

    def claim(
        self,
        claim: Claim,
        resets: Sequence[TaskChange],
        events: Sequence[NewEvent],
        attempt_ends: Sequence[AttemptEnd] = (),
    ) -> ExecutionRecord | None:
        """Take the lease from the state and token last seen, with the resets of a resume.

        The token grows by one, so every later write of a previous owner is refused.
        """
        takeover = claim.status is claim.expected_status and claim.status in ACTIVE_STATES
        if not takeover and not can_move_execution(claim.expected_status, claim.status):
            msg = f"a claim cannot move an execution from {claim.expected_status} to {claim.status}"
            raise RefusedTransitionError(msg)
        now = _now()
        owner = claim.owner
        values: dict[str, Any] = {
            "status": claim.status.value,
            "lease_host": owner.host if owner else None,
            "lease_pid": owner.pid if owner else None,
            "lease_proc_start": owner.proc_start if owner else None,
            "lease_expires_at": claim.lease_expires_at if owner else None,
            "lease_token": t.executions.c.lease_token + 1,
            "error": None,
            "ended_at": None,
        }
        if claim.status is ExecutionState.STARTED and claim.expected_status is not claim.status:
            values["started_at"] = now
        guard: tuple[Any, ...] = (
            t.executions.c.id == claim.execution_id,
            t.executions.c.status == claim.expected_status.value,
            t.executions.c.lease_token == claim.expected_token,
        )
        if takeover:  # managers racing for one stale lease: the losers skip it at once
            locked = select(t.executions.c.id).where(*guard).with_for_update(skip_locked=True)
            guard = (t.executions.c.id.in_(locked.scalar_subquery()),)
        with self._write() as conn:
            claimed = conn.execute(update(t.executions).where(*guard).values(values)).rowcount
            if claimed != 1:
                conn.rollback()
                return None
            self._apply_task_changes(conn, claim.execution_id, resets)
            self._end_attempts(conn, attempt_ends)
            self._insert_events(conn, claim.execution_id, events)
        return self.get_execution(claim.execution_id)

    def claim_pending(
        self, owner: LeaseOwner, lease_expires_at: float, limit: int
    ) -> list[ExecutionRecord]:
        """Take up to `limit` pending executions, oldest first, each with its lease."""
        if limit <= 0:
            return []
        claimed: list[str] = []
        with self._write() as conn:
            candidates = conn.execute(
                select(t.executions.c.id)
                .where(t.executions.c.status == ExecutionState.PENDING.value)
                .order_by(t.executions.c.created_at, t.executions.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # nothing on SQLite: its writer is alone
            ).scalars()
            now = _now()
            for execution_id in list(candidates):
                moved = conn.execute(
                    update(t.executions)
                    .where(
                        t.executions.c.id == execution_id,
                        t.executions.c.status == ExecutionState.PENDING.value,
                    )
                    .values(
                        status=ExecutionState.STARTED.value,
                        lease_host=owner.host,
                        lease_pid=owner.pid,
                        lease_proc_start=owner.proc_start,
                        lease_expires_at=lease_expires_at,
                        lease_token=t.executions.c.lease_token + 1,
                        started_at=func.coalesce(t.executions.c.started_at, now),
                        error=None,
                        ended_at=None,
                    )
                ).rowcount
                if moved == 1:
                    claimed.append(execution_id)
        found = [self.get_execution(execution_id) for execution_id in claimed]
        return [record for record in found if record is not None]

    def list_stale(self, now: float, host: str, limit: int) -> list[ExecutionRecord]:
        """Running executions whose lease expired, or is held by a process of `host`.

        The caller decides whether a local owner is dead; the claim itself is guarded by
        the state and token read here, so two managers never take one over twice.
        """
        active = [state.value for state in ACTIVE_STATES]
        query = (
            select(t.executions)
            .where(
                t.executions.c.status.in_(active),
                (t.executions.c.lease_expires_at < now)
                | t.executions.c.lease_expires_at.is_(None)
                | (t.executions.c.lease_host == host),
            )
            .order_by(t.executions.c.created_at)
            .limit(limit)
        )
        with self._read() as conn:
            return [_execution(row) for row in conn.execute(query)]

    def next_lease_expiry(self, owner: LeaseOwner) -> float | None:
        """When the first lease held by another owner expires (a manager waits until then)."""
        active = [state.value for state in ACTIVE_STATES]
        with self._read() as conn:
            found = conn.execute(
                select(func.min(t.executions.c.lease_expires_at)).where(
                    t.executions.c.status.in_(active),
                    ~(
                        (t.executions.c.lease_host == owner.host)
                        & (t.executions.c.lease_pid == owner.pid)
                    ),
                )
            ).scalar()
        return None if found is None else float(found)

    def release(self, execution_id: str, lease_token: int) -> bool:
        """Give the lease up at once (a graceful stop): the next manager takes over."""
        with self._write() as conn:
            return (
                conn.execute(
                    update(t.executions)
                    .where(
                        t.executions.c.id == execution_id,
                        t.executions.c.lease_token == lease_token,
                    )
                    .values(
                        lease_host=None,
                        lease_pid=None,
                        lease_proc_start=None,
                        lease_expires_at=None,
                    )
                ).rowcount
                == 1
            )

    def request_cancel(
        self, execution_id: str, target: ExecutionState, events: Sequence[NewEvent]
    ) -> ExecutionRecord | None:
        """Move to a `*cancelling` state, guarded by the state alone: the owner carries it out.

        Without a lease, the only end state reachable is `cancelled` of an execution nobody
        runs yet (`pending`, `queued`); a `*cancelling` one is finished by its owner.
        """
        if target in CANCELLING_STATES:
            allowed = execution_sources(target)
        elif target is ExecutionState.CANCELLED:
            allowed = frozenset({ExecutionState.PENDING, ExecutionState.QUEUED})
        else:
            msg = f"a cancel request cannot move an execution to {target}"
            raise RefusedTransitionError(msg)
        sources = [state.value for state in allowed]
        with self._write() as conn:
            if target is ExecutionState.CANCELLED:
                _serialise_key_of(conn, execution_id)
            moved = conn.execute(
                update(t.executions)
                .where(t.executions.c.id == execution_id, t.executions.c.status.in_(sources))
                .values(status=target.value)
            ).rowcount
            if moved != 1:
                conn.rollback()
                return None
            self._insert_events(conn, execution_id, events)
            if target is ExecutionState.CANCELLED:
                self._promote_queued(conn, execution_id)
        return self.get_execution(execution_id)

    def read_status(self, execution_id: str) -> tuple[ExecutionState, int] | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.executions.c.status, t.executions.c.lease_token).where(
                    t.executions.c.id == execution_id
                )
            ).first()
        return None if row is None else (ExecutionState(row.status), row.lease_token)

    def renew_lease(self, execution_id: str, lease_token: int, lease_expires_at: float) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    update(t.executions)
                    .where(
                        t.executions.c.id == execution_id,
                        t.executions.c.lease_token == lease_token,
                        t.executions.c.lease_host.is_not(None),
                    )
                    .values(lease_expires_at=lease_expires_at)
                ).rowcount
                == 1
            )

    # graphs and tasks -----------------------------------------------------------

    def store_graph(
        self,
        execution_id: str,
        lease_token: int,
        name: str,
        tasks: Sequence[NewTask],
        edges: Sequence[tuple[str, str]],
        events: Sequence[NewEvent],
        before_commit: Callable[[], None] | None = None,
    ) -> StoredGraph:
        """Store a graph with its tasks and edges in one transaction, fenced by the lease."""
        now = _now()
        pending = TaskState.PENDING.value
        with self._write() as conn:
            self._fence(conn, execution_id, lease_token)
            inserted = conn.execute(
                insert(t.graphs).values(execution_id=execution_id, name=name, created_at=now)
            ).inserted_primary_key
            assert inserted is not None
            graph_id = inserted[0]
            cursor = conn.connection.cursor()
            insert_task = self._task_insert
            cursor.executemany(  # an iterator: no list of 100,000 rows in memory
                insert_task.sql,
                (  # type: ignore[arg-type]
                    insert_task.row(
                        {
                            "execution_id": execution_id,
                            "graph_id": graph_id,
                            "key": task.key,
                            "operation": task.operation,
                            "agent": task.agent,
                            "kwargs": task.kwargs_json,
                            "max_retries": task.max_retries,
                            "retry_interval": task.retry_interval,
                            "timeout": task.timeout,
                            "status": pending,
                            "retries": 0,
                            "attempts": 0,
                        }
                    )
                    for task in tasks
                ),
            )
            ids: dict[str, int] = {
                key: task_id
                for key, task_id in conn.execute(
                    select(t.tasks.c.key, t.tasks.c.id).where(t.tasks.c.graph_id == graph_id)
                )
            }
            if edges:
                insert_edge = self._dependency_insert
                cursor.executemany(
                    insert_edge.sql,
                    (  # type: ignore[arg-type]
                        insert_edge.row(
                            {"graph_id": graph_id, "task_id": ids[task], "depends_on_id": ids[dep]}
                        )
                        for task, dep in edges
                    ),
                )
            self._insert_events(conn, execution_id, events)
            if before_commit is not None:
                before_commit()
        records = [
            TaskRecord(
                id=ids[task.key],
                execution_id=execution_id,
                graph=name,
                key=task.key,
                operation=task.operation,
                agent=task.agent,
                kwargs_json=task.kwargs_json,
                max_retries=task.max_retries,
                retry_interval=task.retry_interval,
                timeout=task.timeout,
                status=TaskState.PENDING,
                retries=0,
                error=None,
                result_json=None,
                attempts=0,
                next_run_at=None,
                started_at=None,
                ended_at=None,
            )
            for task in tasks
        ]
        return StoredGraph(
            id=graph_id,
            name=name,
            tasks=records,
            edges=[(ids[task], ids[dep]) for task, dep in edges],
        )

    def load_graphs(self, execution_id: str) -> dict[str, StoredGraph]:
        with self._read() as conn, conn.begin():
            graphs = {
                row.id: StoredGraph(id=row.id, name=row.name, tasks=[], edges=[])
                for row in conn.execute(
                    select(t.graphs.c.id, t.graphs.c.name)
                    .where(t.graphs.c.execution_id == execution_id)
                    .order_by(t.graphs.c.id)
                )
            }
            cursor = conn.connection.cursor()
            rows = self._tasks_of_execution.run(cursor, {"b_execution_id": execution_id})
            names = {graph.id: graph.name for graph in graphs.values()}
            lists = {graph.id: graph.tasks for graph in graphs.values()}
            record, states = TaskRecord, _TASK_STATES
            for (
                task_id,
                _,
                graph_id,
                key,
                operation,
                agent,
                kwargs,
                max_retries,
                interval,
                timeout,
                status,
                retries,
                error,
                result,
                attempts,
                due,
                started,
                ended,
            ) in rows.fetchall():
                if graph_id not in lists:
                    # Stored after the graphs were read (READ COMMITTED on PostgreSQL): not
                    # part of this view yet; graph, tasks and edges commit together.
                    continue
                lists[graph_id].append(
                    record(
                        task_id,
                        execution_id,
                        names[graph_id],
                        key,
                        operation,
                        agent,
                        kwargs,
                        max_retries,
                        interval,
                        timeout,
                        states[status],
                        retries,
                        error,
                        result,
                        attempts,
                        due,
                        started,
                        ended,
                    )
                )
            if graphs:
                for row in conn.execute(
                    select(
                        t.dependencies.c.graph_id,
                        t.dependencies.c.task_id,
                        t.dependencies.c.depends_on_id,
                    ).where(t.dependencies.c.graph_id.in_(list(graphs)))
                ):
                    graphs[row.graph_id].edges.append((row.task_id, row.depends_on_id))
        return {graph.name: graph for graph in graphs.values()}

    def list_tasks(self, execution_id: str) -> list[TaskRecord]:
        return [task for graph in self.load_graphs(execution_id).values() for task in graph.tasks]

    def list_attempts(self, execution_id: str) -> list[AttemptRecord]:
        query = (
            select(t.attempts)
            .join(t.tasks, t.tasks.c.id == t.attempts.c.task_id)
            .where(t.tasks.c.execution_id == execution_id)
            .order_by(t.attempts.c.task_id, t.attempts.c.number)
        )
        with self._read() as conn:
            return [attempt_of(row) for row in conn.execute(query)]

    # writes of a running execution ---------------------------------------------

    def apply(self, batch: Batch) -> ExecutionState:
        """Commit a batch of writes fenced by the lease; returns the execution's state.

        The state read back is how the owner learns of a cancel asked from elsewhere.
        """
        with self._write() as conn:
            cursor = conn.connection.cursor()
            status = self._fence(
                conn, batch.execution_id, batch.lease_token, batch.lease_expires_at
            )
            starting = status is ExecutionState.STARTED
            tasks, written = batch.tasks, batch.events
            if starting and batch.starts:  # one statement each for the whole batch
                tasks, written = tasks + batch.starts, written + batch.start_events
            self._apply_task_changes(conn, batch.execution_id, tasks)
            self._end_attempts(conn, batch.attempt_ends)
            self._insert_events(conn, batch.execution_id, written)
            if starting and batch.attempt_starts:
                self._attempt_start.run_many(
                    cursor,
                    [
                        {
                            "task_id": start.task_id,
                            "number": start.number,
                            "outcome": "running",
                            "worker": start.worker,
                            "started_at": start.started_at,
                        }
                        for start in batch.attempt_starts
                    ],
                )
            change = batch.execution
            if change is not None:
                self._move_execution(conn, batch, status)
                status = change.status
        return status

    def _move_execution(self, conn: Connection, batch: Batch, seen: ExecutionState) -> None:
        change = batch.execution
        assert change is not None
        if not all(can_move_execution(source, change.status) for source in change.expected):
            msg = f"execution {batch.execution_id}: {change.status} is not a listed move"
            raise RefusedTransitionError(msg)
        values: dict[str, Any] = {"status": change.status.value, "error": change.error}
        if change.release_lease:
            values.update(
                lease_host=None,
                lease_pid=None,
                lease_proc_start=None,
                lease_expires_at=None,
                ended_at=_now(),
            )
        moved = conn.execute(
            update(t.executions)
            .where(
                t.executions.c.id == batch.execution_id,
                t.executions.c.lease_token == batch.lease_token,
                t.executions.c.status.in_([state.value for state in change.expected]),
            )
            .values(values)
        ).rowcount
        if moved != 1:
            msg = f"execution {batch.execution_id}: refused move from {seen} to {change.status}"
            raise RefusedTransitionError(msg)
        if change.status in EXECUTION_END_STATES:
            self._promote_queued(conn, batch.execution_id)

    def record_late_result(self, end: AttemptEnd, events: Sequence[NewEvent]) -> None:
        """Record an abandoned attempt's outcome in its history; no task state changes."""
        with self._write() as conn:
            self._end_attempts(conn, [end])
            execution_id = conn.execute(
                select(t.tasks.c.execution_id).where(t.tasks.c.id == end.task_id)
            ).scalar_one()
            self._insert_events(conn, execution_id, events)

    # events ----------------------------------------------------------------------

    def list_events(
        self, execution_id: str, after: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        query = select(t.events).where(t.events.c.execution_id == execution_id)
        if after is not None:
            query = query.where(t.events.c.id > int(after))
        query = query.order_by(t.events.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [
                EventRecord(
                    id=str(row.id),
                    execution_id=row.execution_id,
                    graph=row.graph,
                    task_key=row.task_key,
                    type=row.type,
                    level=row.level,
                    message=row.message,
                    created_at=row.created_at,
                )
                for row in conn.execute(query)
            ]

    def count_tasks_by_status(self, execution_id: str) -> dict[str, int]:
        with self._read() as conn:
            return {
                row.status: row.n
                for row in conn.execute(
                    select(t.tasks.c.status, func.count().label("n"))
                    .where(t.tasks.c.execution_id == execution_id)
                    .group_by(t.tasks.c.status)
                )
            }

    # helpers -----------------------------------------------------------------------

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
            self._event_insert.run_many(conn.connection.cursor(), _event_rows(execution_id, events))

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
        params = [_task_params(change, execution_id) for change in changes]
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
