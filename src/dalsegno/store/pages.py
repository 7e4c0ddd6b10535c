"""Lists that page: executions, tasks and events read a page at a time, after a position.

Each list is read in a fixed order on an index, from the position the previous page ended
at (keyset paging, never OFFSET): executions newest first by (created_at, id), tasks and
events oldest first by id. A page costs the same at the millionth row as at the first, and
rows written while a person pages are neither repeated nor skipped: an execution created
later sorts before every page already read; an event or a task written later has a larger
id than every one read.

Ids follow commit order wherever one writer at a time writes the rows of an execution:
always on SQLite (one writer), and on PostgreSQL for every writer that takes the
execution's row first (its owner's batches, claims, cancel requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from dalsegno.model.records import EventRecord, ExecutionRecord, TaskRecord
from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.store import tables as t
from dalsegno.store.retry import retried
from dalsegno.store.statements import brief_executions, execution_of

# Event levels, least severe first: `level=warning` reads warnings and errors.
LEVELS = ("debug", "info", "warning", "error")


def like_escaped(text: str) -> str:
    """`text` for a LIKE pattern, its wildcards matched as themselves (escape `\\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def levels_from(least: str) -> list[str]:
    """The levels at least as severe as `least`."""
    return list(LEVELS[LEVELS.index(least) :]) if least in LEVELS else [least]


def event_of(row: Any) -> EventRecord:
    """An event record from a row of `events`."""
    return EventRecord(
        id=str(row.id),
        execution_id=row.execution_id,
        graph=row.graph,
        task_key=row.task_key,
        type=row.type,
        level=row.level,
        message=row.message,
        created_at=row.created_at,
        actor=row.actor,
    )


def task_of(row: Any) -> TaskRecord:
    """A task record from a row of `tasks` joined with its graph's name (`graph_name`)."""
    return TaskRecord(
        id=row.id,
        execution_id=row.execution_id,
        graph=row.graph_name,
        key=row.key,
        operation=row.operation,
        agent=row.agent,
        kwargs_json=row.kwargs,
        max_retries=row.max_retries,
        retry_interval=row.retry_interval,
        timeout=row.timeout,
        status=TaskState(row.status),
        retries=row.retries,
        error=row.error,
        result_json=row.result,
        attempts=row.attempts,
        next_run_at=row.next_run_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        subgraph=row.subgraph,
        on_failure=row.on_failure,
        instance=row.instance,
    )


class Pages:
    """Paged reads; `_read` comes from `SQLStore`."""

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    @retried("reading a page of executions")
    def page_executions(
        self,
        *,
        statuses: Sequence[ExecutionState] = (),
        workflow: str | None = None,
        since: float | None = None,
        search: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 100,
        deployment: str | None = None,
    ) -> list[ExecutionRecord]:
        """Executions newest first: of these states, workflow and deployment, created at or after
        `since`, whose id starts with `search` or whose workflow contains it, after the
        position `before` (the created_at and id of the last one of the previous page); as
        list views show them (`brief_executions`)."""
        c = t.executions.c
        # a list view: no large params (`LIST_PARAMS`)
        query = brief_executions().where(c.deleting_at.is_(None))
        if statuses:
            query = query.where(c.status.in_([state.value for state in statuses]))
        if workflow is not None:
            query = query.where(c.workflow == workflow)
        if deployment is not None:
            query = query.where(c.deployment_id == deployment)
        if since is not None:
            query = query.where(c.created_at >= since)
        if search:
            pattern = like_escaped(search)
            query = query.where(
                or_(
                    c.id.like(f"{pattern.lower()}%", escape="\\"),
                    c.workflow.like(f"%{pattern}%", escape="\\"),
                )
            )
        if before is not None:
            at, last = before
            query = query.where(or_(c.created_at < at, and_(c.created_at == at, c.id < last)))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        with self._read() as conn:
            return [execution_of(row) for row in conn.execute(query)]

    def _task_query(
        self,
        execution_id: str,
        graph: str | None,
        statuses: Sequence[TaskState],
        key_contains: str | None,
    ) -> Select[Any]:
        query = (
            select(t.tasks, t.graphs.c.name.label("graph_name"))
            .join(t.graphs, t.graphs.c.id == t.tasks.c.graph_id)
            .where(t.tasks.c.execution_id == execution_id)
        )
        if graph is not None:
            query = query.where(t.graphs.c.name == graph)
        if statuses:
            query = query.where(t.tasks.c.status.in_([state.value for state in statuses]))
        if key_contains:
            query = query.where(t.tasks.c.key.like(f"%{like_escaped(key_contains)}%", escape="\\"))
        return query

    @retried("execution {execution_id}: reading a page of tasks")
    def page_tasks(
        self,
        execution_id: str,
        *,
        graph: str | None = None,
        statuses: Sequence[TaskState] = (),
        key_contains: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[TaskRecord]:
        """The execution's tasks in the order they were stored, after the task id `after`."""
        query = self._task_query(execution_id, graph, statuses, key_contains)
        if after is not None:
            query = query.where(t.tasks.c.id > after)
        query = query.order_by(t.tasks.c.id).limit(limit)
        with self._read() as conn:
            return [task_of(row) for row in conn.execute(query)]

    @retried("execution {execution_id}: counting tasks")
    def count_matching_tasks(
        self,
        execution_id: str,
        *,
        graph: str | None = None,
        statuses: Sequence[TaskState] = (),
        key_contains: str | None = None,
    ) -> int:
        """How many tasks `page_tasks` would read in all."""
        query = self._task_query(execution_id, graph, statuses, key_contains).subquery()
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(query)).scalar_one())

    @retried("execution {execution_id}: finding task {key}")
    def find_tasks_by_key(
        self, execution_id: str, key: str, graph: str | None = None
    ) -> list[TaskRecord]:
        """The execution's tasks with this key (one per graph that has it)."""
        query = self._task_query(execution_id, graph, (), None).where(t.tasks.c.key == key)
        with self._read() as conn:
            return [task_of(row) for row in conn.execute(query.order_by(t.tasks.c.id))]

    @retried("execution {execution_id}: reading a page of events")
    def page_events(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int = 1000,
        graph: str | None = None,
        task_key: str | None = None,
        level: str | None = None,
        types: Sequence[str] = (),
    ) -> list[EventRecord]:
        """The execution's events oldest first, after the event id `after`: of one task
        (its key, and graph if given), at least as severe as `level`, of these types."""
        c = t.events.c
        query = select(t.events).where(c.execution_id == execution_id)
        if after is not None:
            query = query.where(c.id > after)
        if graph is not None:
            query = query.where(c.graph == graph)
        if task_key is not None:
            query = query.where(c.task_key == task_key)
        if level is not None:
            query = query.where(c.level.in_(levels_from(level)))
        if types:
            query = query.where(c.type.in_(list(types)))
        query = query.order_by(c.id).limit(limit)
        with self._read() as conn:
            return [event_of(row) for row in conn.execute(query)]

    @retried("reading the agent queues")
    def agent_queues(self) -> dict[str, dict[str, int]]:
        """Each queue that has agent tasks sent to it: how many wait for an agent
        (`waiting`) and how many an agent holds (`held`)."""
        c = t.tasks.c
        query = (
            select(c.agent, (c.holder.is_(None)).label("free"), func.count().label("n"))
            .where(c.agent.is_not(None), c.status.in_(["sent", "started"]))
            .group_by(c.agent, c.holder.is_(None))
        )
        found: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            for row in conn.execute(query):
                counts = found.setdefault(row.agent, {"waiting": 0, "held": 0})
                counts["waiting" if row.free else "held"] += int(row.n)
        return found
