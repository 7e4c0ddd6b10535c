"""Reads for the faces that show executions to a person (the web UI): a page of executions
with their progress, the workflows known, one task's attempts and log lines.

A mixin `SQLStore` inherits, so these queries live apart from the engine's writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Row, case, func, select

from dalsegno.model.states import TaskState
from dalsegno.store import tables as t
from dalsegno.store.base import AttemptRecord, EventRecord, TaskRecord
from dalsegno.store.housekeeping import Housekeeping
from dalsegno.store.pages import Pages, event_of, task_of
from dalsegno.store.retry import retried

DONE = TaskState.SUCCEEDED.value


def attempt_of(row: Row[Any]) -> AttemptRecord:
    """An attempt record from a row of `attempts`."""
    return AttemptRecord(
        task_id=row.task_id,
        number=row.number,
        outcome=row.outcome,
        worker=row.worker,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
    )


class StoreReads(Pages, Housekeeping):
    """The queries of the faces that show executions to people: read-only ones here, the
    paged lists (`dalsegno.store.pages`) and the deletes of ended executions
    (`dalsegno.store.housekeeping`); `_read` and `_write` come from `SQLStore`."""

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def task_progress(self, execution_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(succeeded tasks, all tasks) of each execution; one without tasks is absent."""
        if not execution_ids:
            return {}
        done = func.sum(case((t.tasks.c.status == DONE, 1), else_=0))
        query = (
            select(t.tasks.c.execution_id, done.label("done"), func.count().label("total"))
            .where(t.tasks.c.execution_id.in_(list(execution_ids)))
            .group_by(t.tasks.c.execution_id)
        )
        with self._read() as conn:
            return {
                row.execution_id: (int(row.done), int(row.total)) for row in conn.execute(query)
            }

    @retried("counting executions by state")
    def count_executions_by_status(self) -> dict[str, int]:
        """How many executions the store holds in each state (absent: none)."""
        query = (
            select(t.executions.c.status, func.count().label("n"))
            .where(t.executions.c.deleting_at.is_(None))
            .group_by(t.executions.c.status)
        )
        with self._read() as conn:
            return {row.status: int(row.n) for row in conn.execute(query)}

    def schema_revision(self) -> str | None:
        """The migration the schema is at (None: no schema); one read."""
        from dalsegno.store.migrate import current_revision

        with self._read() as conn:
            return current_revision(conn)

    def list_workflows(self) -> list[str]:
        """Every workflow reference some execution ran, sorted."""
        query = select(t.executions.c.workflow).distinct().order_by(t.executions.c.workflow)
        with self._read() as conn:
            return [row.workflow for row in conn.execute(query)]

    def get_task(self, execution_id: str, task_id: int) -> TaskRecord | None:
        """One task of the execution, by its id."""
        query = (
            select(t.tasks, t.graphs.c.name.label("graph_name"))
            .join(t.graphs, t.graphs.c.id == t.tasks.c.graph_id)
            .where(t.tasks.c.execution_id == execution_id, t.tasks.c.id == task_id)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else task_of(row)

    def list_task_attempts(self, task_id: int) -> list[AttemptRecord]:
        """The attempts of one task, first first."""
        query = (
            select(t.attempts).where(t.attempts.c.task_id == task_id).order_by(t.attempts.c.number)
        )
        with self._read() as conn:
            return [attempt_of(row) for row in conn.execute(query)]

    def list_task_events(
        self, execution_id: str, graph: str, task_key: str, limit: int = 500
    ) -> list[EventRecord]:
        """The events and log lines of one task, oldest first, the last `limit` of them."""
        query = (
            select(t.events)
            .where(
                t.events.c.execution_id == execution_id,
                t.events.c.graph == graph,
                t.events.c.task_key == task_key,
            )
            .order_by(t.events.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [event_of(row) for row in reversed(rows)]

    def list_last_events(self, execution_id: str, limit: int) -> list[EventRecord]:
        """The last `limit` events of the execution, oldest first."""
        query = (
            select(t.events)
            .where(t.events.c.execution_id == execution_id)
            .order_by(t.events.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [event_of(row) for row in reversed(rows)]
