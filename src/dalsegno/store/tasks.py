"""Graphs, tasks and attempts: a graph stored once with its tasks and edges, loaded back
on resume, and the batches of a running execution (group commit), fenced by its lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from dalsegno.model.errors import LeaseLostError, RefusedTransitionError
from dalsegno.model.records import (
    AttemptEnd,
    AttemptRecord,
    Batch,
    NewEvent,
    NewTask,
    StoredGraph,
    SubgraphRecord,
    TaskRecord,
)
from dalsegno.model.states import (
    EXECUTION_END_STATES,
    ExecutionState,
    TaskState,
    can_move_execution,
)
from dalsegno.store import tables as t
from dalsegno.store.core import load_subgraphs
from dalsegno.store.executions import Executions
from dalsegno.store.instances import write_instance_changes
from dalsegno.store.reads import attempt_of
from dalsegno.store.retry import retried
from dalsegno.store.statements import TASK_STATES, clock


def _stored_graph(
    store: Tasks, execution_id: str, _token: int, name: str, *_: object
) -> StoredGraph:
    """What `store_graph` returned, read back after its COMMIT went through unanswered."""
    return store.load_graphs(execution_id)[name]


def _applied(store: Tasks, batch: Batch) -> ExecutionState:
    """What `apply` returned, for a batch that committed though its answer was lost."""
    seen = store.read_status(batch.execution_id)
    if seen is None or seen[1] != batch.lease_token:
        msg = f"lease of execution {batch.execution_id} lost after the batch committed"
        raise LeaseLostError(msg)
    if batch.starts and seen[0] is not ExecutionState.STARTED:
        first = batch.starts[0]  # the starts were written only if the state was `started`
        with store._read() as conn:
            now = conn.execute(select(t.tasks.c.status).where(t.tasks.c.id == first.task_id))
            if now.scalar() == first.status.value:
                return ExecutionState.STARTED
    return seen[0]


def _batch_deadline(batch: Batch) -> float:
    """A batch is retried while its lease would last (and at least a second)."""
    return max(batch.lease_expires_at, time.time() + 1.0)


def _nothing(*_: object) -> None:
    return None


class Tasks(Executions):
    """The queries of graphs, tasks and attempts, and the owner's batches."""

    @retried("execution {execution_id}: storing graph {name}", recover=_stored_graph)
    def store_graph(
        self,
        execution_id: str,
        lease_token: int,
        name: str,
        tasks: Sequence[NewTask],
        edges: Sequence[tuple[str, str]],
        events: Sequence[NewEvent],
        before_commit: Callable[[], None] | None = None,
        *,
        subgraphs: Sequence[SubgraphRecord] = (),
        node_edges: Sequence[tuple[str, str]] = (),
    ) -> StoredGraph:
        """Store a graph with its tasks, subgraphs and edges in one transaction, fenced by
        the lease."""
        now = clock()
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
                            "subgraph": task.subgraph,
                            "on_failure": task.on_failure,
                            "instance": task.instance,
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
            if subgraphs:
                self._store_subgraphs(conn, graph_id, subgraphs, node_edges)
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
                subgraph=task.subgraph,
                on_failure=task.on_failure,
                instance=task.instance,
            )
            for task in tasks
        ]
        return StoredGraph(
            id=graph_id,
            name=name,
            tasks=records,
            edges=[(ids[task], ids[dep]) for task, dep in edges],
            subgraphs=[replace(sub) for sub in subgraphs],
            node_edges=list(node_edges),
        )

    def _store_subgraphs(
        self,
        conn: Connection,
        graph_id: int,
        subgraphs: Sequence[SubgraphRecord],
        node_edges: Sequence[tuple[str, str]],
    ) -> None:
        conn.execute(
            insert(t.subgraphs),
            [
                {
                    "graph_id": graph_id,
                    "key": sub.key,
                    "parent": sub.parent,
                    "max_retries": sub.max_retries,
                    "retry_interval": sub.retry_interval,
                    "on_failure": sub.on_failure,
                    "status": sub.status,
                    "retries": sub.retries,
                    "next_run_at": sub.next_run_at,
                    "error": sub.error,
                }
                for sub in subgraphs
            ],
        )
        if node_edges:
            conn.execute(
                insert(t.subgraph_edges),
                [
                    {"graph_id": graph_id, "node": node, "depends_on": dep}
                    for node, dep in node_edges
                ],
            )

    @retried("execution {execution_id}: loading its graphs")
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
            record, states = TaskRecord, TASK_STATES
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
                subgraph,
                on_failure,
                instance,
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
                        subgraph,
                        on_failure,
                        instance,
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
                load_subgraphs(conn, graphs)
        return {graph.name: graph for graph in graphs.values()}

    @retried("execution {execution_id}: listing its subgraphs")
    def list_subgraphs(self, execution_id: str) -> list[tuple[str, SubgraphRecord]]:
        """(graph name, subgraph) of every subgraph of the execution, graph by graph."""
        with self._read() as conn, conn.begin():
            graphs = {
                row.id: StoredGraph(id=row.id, name=row.name, tasks=[], edges=[])
                for row in conn.execute(
                    select(t.graphs.c.id, t.graphs.c.name)
                    .where(t.graphs.c.execution_id == execution_id)
                    .order_by(t.graphs.c.id)
                )
            }
            if graphs:
                load_subgraphs(conn, graphs)
        return [(graph.name, sub) for graph in graphs.values() for sub in graph.subgraphs]

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

    @retried(
        "execution {batch.execution_id}: writing a batch",
        recover=_applied,
        deadline=_batch_deadline,
    )
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
            # a lifecycle task's instance changes commit with its move (docs/lifecycle.md)
            instances = batch.instances
            if starting and batch.instance_starts:
                instances = batch.instance_starts + instances
            if instances:
                write_instance_changes(conn, instances)
            if batch.subgraphs:
                self._apply_subgraph_changes(conn, batch.subgraphs)
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
                ended_at=clock(),
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

    @retried("recording a late result", recover=_nothing)
    def record_late_result(self, end: AttemptEnd, events: Sequence[NewEvent]) -> None:
        """Record an abandoned attempt's outcome in its history; no task state changes."""
        with self._write() as conn:
            self._end_attempts(conn, [end])
            execution_id = conn.execute(
                select(t.tasks.c.execution_id).where(t.tasks.c.id == end.task_id)
            ).scalar_one()
            self._insert_events(conn, execution_id, events)

    # events ----------------------------------------------------------------------

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
