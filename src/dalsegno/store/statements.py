"""The statements of the hot path, compiled once per dialect, and the rows they take.

A running execution's writes (task moves, attempts, events, the lease check) are a
handful of `executemany` calls on the driver's cursor inside one transaction; the
PostgreSQL backend turns some of them into one statement per batch (`dalsegno.store.pgbulk`).
"""

from __future__ import annotations

import json
import operator
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Row,
    Select,
    Text,
    bindparam,
    case,
    func,
    insert,
    null,
    select,
    update,
)

from dalsegno.model.errors import RefusedTransitionError
from dalsegno.model.limits import CUT, LIST_PARAMS, LIST_TEXT
from dalsegno.model.records import ExecutionRecord, LeaseOwner, NewEvent, TaskChange
from dalsegno.model.states import DISPATCH_SOURCES, ExecutionState, TaskState, can_move_task
from dalsegno.store import tables as t


def clock() -> float:
    """The store's clock: UTC seconds since the epoch."""
    return time.time()


TASK_UPDATE = (
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
        resume=func.coalesce(bindparam("b_resume", type_=Boolean), t.tasks.c.resume),
    )
)

ATTEMPT_END = (
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


FENCE_RENEW = (
    update(t.executions)
    .where(
        t.executions.c.id == bindparam("b_id"),
        t.executions.c.lease_token == bindparam("b_token"),
        t.executions.c.lease_host.is_not(None),
    )
    .values(lease_expires_at=bindparam("b_expires"))
    .returning(t.executions.c.status)
)
FENCE_READ = select(t.executions.c.status).where(
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
_AGENT_TASK_COLUMNS = ("holder", "attempt_id", "claimed_at", "resume")
_AGENT_ATTEMPT_COLUMNS = tuple(c.name for c in t.attempts.columns if c.name.startswith("report"))
ATTEMPT_START = _insert_of(t.attempts, "ended_at", "error", "attempt_id", *_AGENT_ATTEMPT_COLUMNS)
# an attempt an agent starts: with its attempt id (dalsegno.store.agents)
AGENT_ATTEMPT_START = _insert_of(t.attempts, "ended_at", "error", *_AGENT_ATTEMPT_COLUMNS)
EVENT_INSERT = _insert_of(t.events, "id")
TASK_INSERT = _insert_of(
    t.tasks, "id", "error", "result", "next_run_at", "started_at", "ended_at", *_AGENT_TASK_COLUMNS
)
DEPENDENCY_INSERT = _insert_of(t.dependencies)


class Compiled:
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


def task_params(change: TaskChange, execution_id: str) -> dict[str, Any]:
    if not can_move_task(change.expected, change.status) and not (
        change.status is TaskState.STARTED and change.expected in DISPATCH_SOURCES
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
        "b_resume": change.resume,
    }


def event_rows(execution_id: str, events: Sequence[NewEvent]) -> list[dict[str, Any]]:
    written_at = clock()
    return [
        {
            "execution_id": execution_id,
            "graph": event.graph,
            "task_key": event.task_key,
            "type": event.type,
            "level": event.level,
            "message": event.message,
            "created_at": event.created_at or written_at,
            "actor": event.actor,
        }
        for event in events
    ]


def brief_executions() -> Select[Any]:
    """Executions as list views show them: params larger than `LIST_PARAMS` are left out
    (not even read: `ExecutionRecord.params_omitted`), an error is cut at `LIST_TEXT`."""
    columns = t.executions.c
    error = case(
        (
            func.length(columns.error) > LIST_TEXT,
            func.substr(columns.error, 1, LIST_TEXT - len(CUT), type_=Text).concat(CUT),
        ),
        else_=columns.error,
    )
    params = case((func.length(columns.params) <= LIST_PARAMS, columns.params), else_=null())
    return select(
        *(column for column in columns if column.name not in ("params", "error")),
        params.label("params"),
        error.label("error"),
    )


def execution_of(row: Row[Any]) -> ExecutionRecord:
    owner = None
    if row.lease_host is not None:
        owner = LeaseOwner(row.lease_host, row.lease_pid, row.lease_proc_start or "")
    omitted = row.params is None
    return ExecutionRecord(
        id=row.id,
        workflow=row.workflow,
        status=ExecutionState(row.status),
        params={} if omitted else json.loads(row.params),
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        lease_owner=owner,
        lease_expires_at=row.lease_expires_at,
        lease_token=row.lease_token,
        lock_key=row.lock_key,
        params_omitted=omitted,
        runs=row.runs,
        first_started_at=row.first_started_at,
        take_up=row.take_up,
        dry_run=bool(row.dry_run),
        task_retries=row.task_retries,
        task_retry_interval=row.task_retry_interval,
        deployment_id=row.deployment_id,
    )


TASK_STATES = {state.value: state for state in TaskState}
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
    t.tasks.c.subgraph,
    t.tasks.c.on_failure,
    t.tasks.c.instance,
)
TASKS_OF_EXECUTION = (
    select(*_TASK_COLUMNS)
    .where(t.tasks.c.execution_id == bindparam("b_execution_id"))
    .order_by(t.tasks.c.id)
)
