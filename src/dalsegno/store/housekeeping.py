"""Deleting ended executions, in bounded batches that never hold the store for long.

A delete first marks the execution (`deleting_at`) in one short transaction, guarded by its
state: only a `completed`, `failed` or `cancelled` execution, not being deleted already,
can be marked. The mark also increments its lease token, so a resume that read the
execution before the mark cannot claim it after (its guarded claim finds another token).
From then on every reader treats it as gone. Its rows are then removed a batch at a time,
each batch one transaction of at most `BATCH` tasks (with their attempts and dependencies)
or `BATCH` events: running executions write between two batches, on SQLite too. The
execution's own row goes last; a delete cut short (a crash, a full disk) leaves the mark,
and the next delete or purge of it finishes the work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, or_, select, update

from dalsegno.model.states import ExecutionState
from dalsegno.store import tables as t
from dalsegno.store.retry import retried

BATCH = 500
ENDED = (ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED)


@dataclass(slots=True)
class Removed:
    """What a delete removed."""

    executions: int = 0
    tasks: int = 0
    events: int = 0

    def add(self, other: Removed) -> None:
        self.executions += other.executions
        self.tasks += other.tasks
        self.events += other.events


class Housekeeping:
    """Deletes; `_write` and `_read` come from `SQLStore`."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    @retried("execution {execution_id}: marking it for deletion")
    def mark_deleting(self, execution_id: str) -> bool:
        """Mark an ended execution as being deleted (or find it marked by a delete that was
        cut short); False when it is not ended."""
        c = t.executions.c
        with self._write() as conn:
            marked = conn.execute(
                update(t.executions)
                .where(
                    c.id == execution_id,
                    c.status.in_([state.value for state in ENDED]),
                    c.deleting_at.is_(None),
                )
                .values(deleting_at=time.time(), lease_token=c.lease_token + 1)
            ).rowcount
            if marked:
                return True
            again = conn.execute(
                select(c.id).where(c.id == execution_id, c.deleting_at.is_not(None))
            ).first()
        return again is not None

    @retried("execution {execution_id}: deleting its rows")
    def remove_marked(self, execution_id: str, batch: int = BATCH) -> Removed:
        """Remove a marked execution's rows, `batch` at a time, then the execution itself."""
        removed = Removed()
        while True:
            with self._write() as conn:
                events = conn.execute(
                    delete(t.events).where(
                        t.events.c.id.in_(
                            select(t.events.c.id)
                            .where(t.events.c.execution_id == execution_id)
                            .limit(batch)
                            .scalar_subquery()
                        )
                    )
                ).rowcount
            removed.events += events
            if events < batch:
                break
        while True:
            with self._write() as conn:
                chunk = list(
                    conn.execute(
                        select(t.tasks.c.id)
                        .where(t.tasks.c.execution_id == execution_id)
                        .limit(batch)
                    ).scalars()
                )
                if chunk:
                    conn.execute(delete(t.attempts).where(t.attempts.c.task_id.in_(chunk)))
                    conn.execute(
                        delete(t.dependencies).where(
                            or_(
                                t.dependencies.c.task_id.in_(chunk),
                                t.dependencies.c.depends_on_id.in_(chunk),
                            )
                        )
                    )
                    conn.execute(delete(t.tasks).where(t.tasks.c.id.in_(chunk)))
            removed.tasks += len(chunk)
            if len(chunk) < batch:
                break
        with self._write() as conn:
            graph_ids = select(t.graphs.c.id).where(t.graphs.c.execution_id == execution_id)
            conn.execute(delete(t.subgraph_edges).where(t.subgraph_edges.c.graph_id.in_(graph_ids)))
            conn.execute(delete(t.subgraphs).where(t.subgraphs.c.graph_id.in_(graph_ids)))
            conn.execute(delete(t.graphs).where(t.graphs.c.execution_id == execution_id))
            removed.executions = conn.execute(
                delete(t.executions).where(
                    t.executions.c.id == execution_id, t.executions.c.deleting_at.is_not(None)
                )
            ).rowcount
        return removed

    @retried("choosing executions to purge")
    def purge_candidates(
        self,
        statuses: Sequence[ExecutionState],
        before: float,
        keep_last: int,
        limit: int,
    ) -> list[str]:
        """Ended executions in `statuses` that ended before `before` (oldest first), but the
        newest `keep_last` of each workflow among those in `statuses`; and executions whose
        delete was cut short."""
        c = t.executions.c
        wanted = [state.value for state in statuses if state in ENDED]
        newest_first = (
            func.row_number()
            .over(partition_by=c.workflow, order_by=(c.created_at.desc(), c.id.desc()))
            .label("rank")
        )
        ranked = (
            select(c.id, c.ended_at, c.created_at, newest_first)
            .where(c.status.in_(wanted), c.deleting_at.is_(None))
            .subquery()
        )
        query = (
            select(ranked.c.id)
            .where(
                ranked.c.rank > keep_last,
                func.coalesce(ranked.c.ended_at, ranked.c.created_at) < before,
            )
            .order_by(ranked.c.created_at, ranked.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            unfinished = list(
                conn.execute(select(c.id).where(c.deleting_at.is_not(None)).limit(limit)).scalars()
            )
            return unfinished + list(conn.execute(query).scalars())[: limit - len(unfinished)]
