"""Reads for the faces that show executions to a person (the web UI): a page of executions
with their progress, the workflows known, one task's attempts and log lines.

A mixin `SQLStore` inherits, so these queries live apart from the engine's writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, func, select

from dalsegno.model.states import TaskState
from dalsegno.store import tables as t
from dalsegno.store.base import AttemptRecord, EventRecord, StoredGraph, TaskRecord
from dalsegno.store.core import load_subgraphs
from dalsegno.store.housekeeping import Housekeeping
from dalsegno.store.pages import Pages, event_of, task_of
from dalsegno.store.retry import retried
from dalsegno.store.statements import Compiled

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

    def _outline_statement(self, conn: Connection) -> Compiled:
        """The outline's query, compiled once for this store's dialect."""
        found: Compiled | None = getattr(self, "_outline_compiled", None)
        if found is None:
            c = t.tasks.c
            query = (
                select(c.id, c.graph_id, c.key, c.operation, c.agent, c.max_retries,
                       c.status, c.retries, c.error, c.attempts, c.next_run_at,
                       c.started_at, c.ended_at, c.subgraph, c.on_failure)
                .where(c.execution_id == bindparam("b_execution_id"))
                .order_by(c.id)
            )  # fmt: skip
            found = Compiled(query, conn.dialect)
            self._outline_compiled = found
        return found

    @retried("execution {execution_id}: loading the outline of its graphs")
    def load_graph_outlines(self, execution_id: str) -> dict[str, StoredGraph]:
        """The execution's graphs as pictures and tables need them: every task with its
        key, state, times and error, but without its arguments and result (`kwargs_json`
        is `{}`, `result_json` None), which can weigh megabytes over 50,000 tasks; and
        every edge. One read transaction, so a graph never comes without its tasks."""
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
            rows = self._outline_statement(conn).run(cursor, {"b_execution_id": execution_id})
            states = {state.value: state for state in TaskState}
            record = TaskRecord
            for (task_id, graph_id, key, operation, agent, max_retries, status, retries, error,
                 attempts, due, started, ended, subgraph, on_failure,
                 ) in rows.fetchall():  # fmt: skip
                graph = graphs.get(graph_id)
                if graph is None:
                    continue  # stored after the graphs were read: not part of this view yet
                graph.tasks.append(
                    record(task_id, execution_id, graph.name, key, operation, agent, "{}",
                           max_retries, 0.0, None, states[status], retries, error, None,
                           attempts, due, started, ended, subgraph, on_failure)
                )  # fmt: skip
            if graphs:
                d = t.dependencies.c
                for edge in conn.execute(
                    select(d.graph_id, d.task_id, d.depends_on_id).where(
                        d.graph_id.in_(list(graphs))
                    )
                ):
                    graphs[edge.graph_id].edges.append((edge.task_id, edge.depends_on_id))
                load_subgraphs(conn, graphs)
        return {graph.name: graph for graph in graphs.values()}

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
