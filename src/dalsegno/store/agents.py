"""The agent queue in the store: claims, `started`, results, heartbeats, agents, tokens.

A mixin `SQLStore` inherits. What an agent does here touches only the agent-queue
columns of a task (`holder`, `attempt_id`, `claimed_at`), the `sent -> started` move an
agent reports, and the report columns of its attempt: every other move of an agent task
(applying a result, requeueing a lost attempt, a kill) is the execution owner's, fenced by
its lease token like any of its writes. docs/agents.md tells the whole protocol.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, String, and_, cast, insert, literal, select, update

from dalsegno.model.states import ACTIVE_STATES, ExecutionState, TaskState
from dalsegno.store import tables as t
from dalsegno.store.agent_records import (
    AgentBeat,
    AgentRecord,
    AgentReport,
    Assignment,
    AwaitedTask,
    HeldTask,
)
from dalsegno.store.retry import retried

STARTED = "started"
ACCEPTED, DUPLICATE, CONFLICT, UNKNOWN = "accepted", "duplicate", "conflict", "unknown"
_ACTIVE = [state.value for state in ACTIVE_STATES]
_IN_FLIGHT = [TaskState.SENT.value, TaskState.STARTED.value]
CLAIM_PASSES = 5  # statements a claim tries before it says the queue is empty


def _now() -> float:
    return time.time()


def _event(
    execution_id: str, graph: str, key: str, type_: str, message: str, level: str, at: float
) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "graph": graph,
        "task_key": key,
        "type": type_,
        "level": level,
        "message": message,
        "created_at": at,
    }


def _unheld(queue: str) -> Any:
    """The sent, unheld tasks of `queue` whose execution is `started`: those a claim takes."""
    return (
        select(t.tasks.c.id)
        .join(t.executions, t.executions.c.id == t.tasks.c.execution_id)
        .where(
            t.tasks.c.agent == queue,
            t.tasks.c.status == TaskState.SENT.value,
            t.tasks.c.holder.is_(None),
            t.executions.c.status == ExecutionState.STARTED.value,
        )
    )


class AgentQueue:
    """The agent queue's queries; `_write` and `_read` come from `SQLStore`."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    # claims ------------------------------------------------------------------------

    def claim_agent_tasks(self, queue: str, agent: str, limit: int) -> list[Assignment]:
        """Hold up to `limit` sent, unheld tasks of `queue` whose execution is `started`.

        Each gets a fresh attempt id. On PostgreSQL the rows are picked `FOR UPDATE SKIP
        LOCKED`, so concurrent claims get disjoint sets; SQLite has one writer at a time.
        """
        nonce = uuid.uuid4().hex
        tasks = t.tasks
        now = _now()
        candidates = _unheld(queue).order_by(tasks.c.id).with_for_update(skip_locked=True, of=tasks)
        unheld = _unheld(queue).limit(1)
        with self._write() as conn:
            claimed: list[int] = []
            # In READ COMMITTED, a row another claim updated between this statement's
            # snapshot and its lock drops out after the LIMIT: a short pass is not "empty".
            for _ in range(CLAIM_PASSES):
                # two statements: `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` may run
                # its subquery once per row, and then hold more than n
                picked = [row[0] for row in conn.execute(candidates.limit(limit - len(claimed)))]
                taken = (
                    [
                        row[0]
                        for row in conn.execute(
                            update(tasks)
                            .where(tasks.c.id.in_(picked), tasks.c.holder.is_(None))
                            .values(
                                holder=agent,
                                attempt_id=literal(f"{nonce}-") + cast(tasks.c.id, String),
                                claimed_at=now,
                            )
                            .returning(tasks.c.id)
                        )
                    ]
                    if picked
                    else []
                )
                claimed += taken
                if len(claimed) >= limit or not conn.execute(unheld).first():
                    break
            if not claimed:
                return []
            return self._assignments(conn, claimed)

    def _assignments(self, conn: Connection, task_ids: list[int]) -> list[Assignment]:
        tasks = t.tasks
        rows = conn.execute(
            select(
                tasks.c.id,
                tasks.c.attempt_id,
                tasks.c.execution_id,
                t.graphs.c.name.label("graph"),
                tasks.c.key,
                tasks.c.operation,
                tasks.c.kwargs,
                tasks.c.retries,
                tasks.c.attempts,
                tasks.c.timeout,
            )
            .join(t.graphs, t.graphs.c.id == tasks.c.graph_id)
            .where(tasks.c.id.in_(task_ids))
            .order_by(tasks.c.id)
        ).all()
        # ctx.resume: the last attempt was lost on its agent (or interrupted on a manager)
        last = {
            row.task_id: row.outcome
            for row in conn.execute(
                select(t.attempts.c.task_id, t.attempts.c.outcome)
                .join(tasks, tasks.c.id == t.attempts.c.task_id)
                .where(
                    t.attempts.c.task_id.in_(task_ids),
                    t.attempts.c.number == tasks.c.attempts - 1,
                )
            )
        }
        return [
            Assignment(
                attempt_id=row.attempt_id,
                task_id=row.id,
                execution_id=row.execution_id,
                graph=row.graph,
                task_key=row.key,
                operation=row.operation,
                kwargs_json=row.kwargs,
                retries=row.retries,
                resume=last.get(row.id) in ("lost", "interrupted"),
                timeout=row.timeout,
            )
            for row in rows
        ]

    def attempt_queue(self, attempt_id: str) -> str | None:
        """The queue of the task an attempt id was given for, or None when unknown."""
        with self._read() as conn:
            found = conn.execute(
                select(t.tasks.c.agent).where(t.tasks.c.attempt_id == attempt_id)
            ).scalar()
            if found is None:
                found = conn.execute(
                    select(t.tasks.c.agent)
                    .join(t.attempts, t.attempts.c.task_id == t.tasks.c.id)
                    .where(t.attempts.c.attempt_id == attempt_id)
                ).scalar()
            return None if found is None else str(found)

    # started -----------------------------------------------------------------------

    def start_agent_attempt(self, attempt_id: str, agent: str) -> str:
        """`sent -> started` for the attempt `agent` holds, with its attempt row and event.

        Returns STARTED (also when it already was: a repeat), CONFLICT when the agent does
        not hold it or the execution is not `started` (the claim is then released), or
        UNKNOWN. The execution's row is read `FOR SHARE`: a cancel commits before or after.
        """
        tasks = t.tasks
        now = _now()
        with self._write() as conn:
            row = conn.execute(
                select(
                    tasks.c.id,
                    tasks.c.execution_id,
                    tasks.c.status,
                    tasks.c.holder,
                    tasks.c.attempts,
                    tasks.c.key,
                    tasks.c.retries,
                    tasks.c.max_retries,
                    t.graphs.c.name.label("graph"),
                )
                .join(t.graphs, t.graphs.c.id == tasks.c.graph_id)
                .where(tasks.c.attempt_id == attempt_id)
            ).first()
            if row is None:
                known = conn.execute(
                    select(t.attempts.c.task_id).where(t.attempts.c.attempt_id == attempt_id)
                ).first()
                return CONFLICT if known is not None else UNKNOWN
            if row.holder != agent:
                return CONFLICT
            if row.status == TaskState.STARTED.value:
                return STARTED
            status = conn.execute(
                select(t.executions.c.status)
                .where(t.executions.c.id == row.execution_id)
                .with_for_update(read=True)
            ).scalar()
            if status != ExecutionState.STARTED.value or row.status != TaskState.SENT.value:
                conn.execute(  # the claim ends; a resumed execution sends the task again
                    update(tasks)
                    .where(tasks.c.id == row.id, tasks.c.attempt_id == attempt_id)
                    .values(holder=None, attempt_id=None, claimed_at=None)
                )
                return CONFLICT
            moved = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == row.id,
                    tasks.c.attempt_id == attempt_id,
                    tasks.c.holder == agent,
                    tasks.c.status == TaskState.SENT.value,
                )
                .values(
                    status=TaskState.STARTED.value,
                    attempts=tasks.c.attempts + 1,
                    started_at=now,
                    ended_at=None,
                    next_run_at=None,
                )
            ).rowcount
            if moved != 1:
                return CONFLICT
            conn.execute(
                insert(t.attempts).values(
                    task_id=row.id,
                    number=row.attempts,
                    outcome="running",
                    worker=f"agent {agent}",
                    started_at=now,
                    attempt_id=attempt_id,
                )
            )
            retry = f" [retry {row.retries}/{row.max_retries}]" if row.retries else ""
            conn.execute(
                insert(t.events).values(
                    _event(
                        row.execution_id,
                        row.graph,
                        row.key,
                        "task_started",
                        f"Task started '{row.key}' on agent {agent}{retry}",
                        "info",
                        now,
                    )
                )
            )
            return STARTED

    # results -----------------------------------------------------------------------

    def record_agent_result(self, attempt_id: str, agent: str, report: AgentReport) -> str:
        """Keep an attempt's result for its owner to apply; the first delivery wins.

        ACCEPTED when recorded, DUPLICATE when a result was recorded already, CONFLICT when
        `agent` does not hold the attempt (lost, killed, never started), UNKNOWN. A result
        for an execution nobody runs any more (force-cancelled) also ends the attempt.
        """
        tasks, attempts = t.tasks, t.attempts
        now = _now()
        with self._write() as conn:
            row = conn.execute(
                select(
                    attempts.c.task_id,
                    attempts.c.number,
                    attempts.c.worker,
                    attempts.c.outcome,
                    attempts.c.report_outcome,
                    tasks.c.execution_id,
                    tasks.c.key,
                    tasks.c.status,
                    tasks.c.holder,
                    tasks.c.attempt_id.label("held_id"),
                    t.graphs.c.name.label("graph"),
                    t.executions.c.status.label("execution_status"),
                )
                .join(tasks, tasks.c.id == attempts.c.task_id)
                .join(t.graphs, t.graphs.c.id == tasks.c.graph_id)
                .join(t.executions, t.executions.c.id == tasks.c.execution_id)
                .where(attempts.c.attempt_id == attempt_id)
            ).first()
            if row is None:
                claimed = conn.execute(
                    select(tasks.c.id).where(tasks.c.attempt_id == attempt_id)
                ).first()
                return CONFLICT if claimed is not None else UNKNOWN
            if row.worker != f"agent {agent}":
                return CONFLICT
            if row.report_outcome is not None:
                return DUPLICATE
            if (
                row.held_id != attempt_id
                or row.holder != agent
                or row.status != TaskState.STARTED.value
                or row.outcome != "running"
            ):
                return CONFLICT
            values: dict[str, Any] = {
                "report_outcome": report.outcome,
                "report_result": report.result_json,
                "report_error": report.error,
                "report_recoverable": int(report.recoverable),
                "report_retry_after": report.retry_after,
                "reported_at": now,
            }
            orphan = row.execution_status not in _ACTIVE or (
                row.execution_status == ExecutionState.FORCE_CANCELLING.value
            )
            if orphan:  # nobody applies it: a late result, kept in the attempt's history
                ended = "succeeded" if report.outcome == "succeeded" else "failed"
                values.update(outcome=ended, ended_at=now, error=report.error)
            conn.execute(
                update(attempts)
                .where(attempts.c.attempt_id == attempt_id, attempts.c.report_outcome.is_(None))
                .values(values)
            )
            rows = [
                _event(
                    row.execution_id,
                    row.graph,
                    row.key,
                    "log",
                    log.message,
                    log.level,
                    log.created_at or now,
                )
                for log in report.logs
            ]
            if orphan:
                rows.append(
                    _event(
                        row.execution_id,
                        row.graph,
                        row.key,
                        "task_late_result",
                        f"Task '{row.key}' attempt {row.number + 1} ended after it was "
                        f"abandoned: {report.outcome} (ignored)",
                        "warning",
                        now,
                    )
                )
            if rows:
                conn.execute(insert(t.events), rows)
            return ACCEPTED

    # heartbeats and agents -----------------------------------------------------------

    def agent_heartbeat(self, beat: AgentBeat) -> tuple[list[str], list[str]]:
        """Record the agent's beat; returns the attempts to kill and those it does not hold."""
        now = _now()
        agents = t.agents
        with self._write() as conn:
            updated = conn.execute(
                update(agents)
                .where(agents.c.name == beat.agent)
                .values(
                    queue=beat.queue,
                    host=beat.host,
                    pid=beat.pid,
                    concurrency=beat.concurrency,
                    last_heartbeat_at=now,
                )
            ).rowcount
            if updated != 1:
                conn.execute(
                    insert(agents).values(
                        name=beat.agent,
                        queue=beat.queue,
                        host=beat.host,
                        pid=beat.pid,
                        concurrency=beat.concurrency,
                        first_seen_at=now,
                        last_heartbeat_at=now,
                    )
                )
            if not beat.attempt_ids:
                return [], []
            held = {
                row[0]
                for row in conn.execute(
                    select(t.tasks.c.attempt_id).where(
                        t.tasks.c.attempt_id.in_(beat.attempt_ids),
                        t.tasks.c.holder == beat.agent,
                        t.tasks.c.status.in_(_IN_FLIGHT),
                    )
                )
            }
            if held:  # each attempt an agent lists is alive: its own heartbeat, renewed
                conn.execute(
                    update(t.tasks)
                    .where(t.tasks.c.attempt_id.in_(held), t.tasks.c.holder == beat.agent)
                    .values(claimed_at=now)
                )
            killed = {
                row[0]
                for row in conn.execute(
                    select(t.attempts.c.attempt_id).where(
                        t.attempts.c.attempt_id.in_(beat.attempt_ids),
                        t.attempts.c.outcome == "killed",
                        t.attempts.c.worker == f"agent {beat.agent}",
                    )
                )
            }
        kill = [attempt for attempt in beat.attempt_ids if attempt in killed]
        unknown = [a for a in beat.attempt_ids if a not in held and a not in killed]
        return kill, unknown

    def list_agents(self) -> list[AgentRecord]:
        tasks = t.tasks
        with self._read() as conn:
            held: dict[str, list[HeldTask]] = {}
            for row in conn.execute(
                select(
                    tasks.c.holder,
                    tasks.c.attempt_id,
                    tasks.c.execution_id,
                    t.graphs.c.name.label("graph"),
                    tasks.c.key,
                    tasks.c.status,
                )
                .join(t.graphs, t.graphs.c.id == tasks.c.graph_id)
                .where(tasks.c.holder.is_not(None), tasks.c.status.in_(_IN_FLIGHT))
                .order_by(tasks.c.id)
            ):
                held.setdefault(row.holder, []).append(
                    HeldTask(row.attempt_id, row.execution_id, row.graph, row.key, row.status)
                )
            return [
                AgentRecord(
                    name=row.name,
                    queue=row.queue,
                    host=row.host,
                    pid=row.pid,
                    concurrency=row.concurrency,
                    last_heartbeat_at=row.last_heartbeat_at,
                    running=held.get(row.name, []),
                )
                for row in conn.execute(
                    select(t.agents).order_by(t.agents.c.queue, t.agents.c.name)
                )
            ]

    # the owner's view ------------------------------------------------------------------

    @retried("execution {execution_id}: reading its agents' tasks")
    def awaited_agent_tasks(self, execution_id: str, task_ids: Sequence[int]) -> list[AwaitedTask]:
        """The claimed ones of the agent tasks an owner awaits: when their holder last
        showed it holds them, and any result recorded for the attempt it holds."""
        if not task_ids:
            return []
        tasks, attempts = t.tasks, t.attempts
        query = (
            select(
                tasks.c.id,
                tasks.c.status,
                tasks.c.attempts,
                tasks.c.started_at,
                tasks.c.holder,
                tasks.c.attempt_id,
                tasks.c.claimed_at,
                attempts.c.report_outcome,
                attempts.c.report_result,
                attempts.c.report_error,
                attempts.c.report_recoverable,
                attempts.c.report_retry_after,
            )
            .outerjoin(
                attempts,
                and_(
                    attempts.c.task_id == tasks.c.id,
                    attempts.c.attempt_id == tasks.c.attempt_id,
                ),
            )
            # only claimed tasks can have news: a result, or a holder that went silent
            .where(tasks.c.execution_id == execution_id, tasks.c.holder.is_not(None))
        )
        wanted = set(task_ids)
        with self._read() as conn:
            rows = [row for row in conn.execute(query) if row.id in wanted]
            return [
                AwaitedTask(
                    task_id=row.id,
                    status=TaskState(row.status),
                    attempts=row.attempts,
                    started_at=row.started_at,
                    holder=row.holder,
                    attempt_id=row.attempt_id,
                    claimed_at=row.claimed_at,
                    report=None
                    if row.report_outcome is None
                    else AgentReport(
                        outcome=row.report_outcome,
                        result_json=row.report_result,
                        error=row.report_error,
                        recoverable=bool(row.report_recoverable),
                        retry_after=row.report_retry_after,
                    ),
                )
                for row in rows
            ]
