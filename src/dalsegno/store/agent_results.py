"""Results of agent attempts in the store: recorded for the owner, and the owner's view.

A mixin of `SQLStore` (through `AgentQueue`). An agent's result is kept on its attempt row
(`report_*` columns) until the execution's owner applies it, under its lease, like any of
its writes; recording never moves a task. docs/agents.md tells the whole protocol.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update
from sqlalchemy.engine import Dialect

from dalsegno.model.states import ACTIVE_STATES, ExecutionState, TaskState
from dalsegno.store import tables as t
from dalsegno.store.agent_records import RESULTS_CHANNEL, AgentReport, AwaitedTask, Delivery
from dalsegno.store.instances import INSTANCE_UPDATE
from dalsegno.store.retry import retried
from dalsegno.store.statements import AGENT_ATTEMPT_START, EVENT_INSERT, Compiled

ACCEPTED, DUPLICATE, CONFLICT, UNKNOWN = "accepted", "duplicate", "conflict", "unknown"
_ACTIVE = [state.value for state in ACTIVE_STATES]

_REPORTED = (
    update(t.attempts)
    .where(
        t.attempts.c.attempt_id == bindparam("b_attempt_id"),
        t.attempts.c.report_outcome.is_(None),
    )
    .values(
        report_outcome=bindparam("b_outcome"),
        report_result=bindparam("b_result"),
        report_error=bindparam("b_error"),
        report_recoverable=bindparam("b_recoverable"),
        report_retry_after=bindparam("b_retry_after"),
        reported_at=bindparam("b_at"),
        report_instances=bindparam("b_instances"),
        # an orphan's attempt ends here (nobody applies it); any other stays `running`
        outcome=bindparam("b_ended"),
        ended_at=bindparam("b_ended_at"),
        error=bindparam("b_ended_error"),
    )
)

# The attempts results are delivered for, with their task's and execution's state.
HELD_ATTEMPTS = (
    select(
        t.attempts.c.attempt_id,
        t.attempts.c.number,
        t.attempts.c.worker,
        t.attempts.c.outcome,
        t.attempts.c.started_at,
        t.attempts.c.report_outcome,
        t.tasks.c.execution_id,
        t.tasks.c.key,
        t.tasks.c.agent.label("queue"),
        t.tasks.c.status,
        t.tasks.c.holder,
        t.tasks.c.attempt_id.label("held_id"),
        t.graphs.c.name.label("graph"),
        t.executions.c.status.label("execution_status"),
    )
    .join(t.tasks, t.tasks.c.id == t.attempts.c.task_id)
    .join(t.graphs, t.graphs.c.id == t.tasks.c.graph_id)
    .join(t.executions, t.executions.c.id == t.tasks.c.execution_id)
)
_HELD_ATTEMPTS = HELD_ATTEMPTS.where(
    t.attempts.c.attempt_id.in_(bindparam("b_ids", expanding=True))
)


_ON_HELD_ATTEMPT = and_(
    t.attempts.c.task_id == t.tasks.c.id, t.attempts.c.attempt_id == t.tasks.c.attempt_id
)
_AWAITED = select(
    t.tasks.c.id,
    t.tasks.c.status,
    t.tasks.c.attempts,
    t.tasks.c.started_at,
    t.tasks.c.holder,
    t.tasks.c.attempt_id,
    t.tasks.c.claimed_at,
    t.attempts.c.report_outcome,
    t.attempts.c.report_result,
    t.attempts.c.report_error,
    t.attempts.c.report_recoverable,
    t.attempts.c.report_retry_after,
    t.attempts.c.report_instances,
)
# only claimed tasks can have news: a result, or a holder that went silent
_HELD = (
    t.tasks.c.execution_id == bindparam("b_execution_id"),
    t.tasks.c.holder.is_not(None),
)
_CLAIMED_TASKS = _AWAITED.outerjoin(t.attempts, _ON_HELD_ATTEMPT).where(*_HELD)
_REPORTED_TASKS = _AWAITED.join(t.attempts, _ON_HELD_ATTEMPT).where(
    *_HELD, t.attempts.c.report_outcome.is_not(None)
)


def event_row(
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
        "actor": None,
    }


def notify_results(conn: Connection) -> bool:
    """Wake the owners waiting for results: on PostgreSQL with this transaction's commit
    (returns True); on SQLite the caller notifies after the commit (False)."""
    if conn.dialect.name != "postgresql":
        return False
    conn.execute(select(func.pg_notify(RESULTS_CHANNEL, "")))
    return True


class AgentResults:
    """Recording agents' results, and the owner's view of the tasks it awaits.

    The writes of an exchange that need no answer (results kept, attempts started,
    events) run compiled once, on the driver's cursor, as the owner's writes do
    (`dalsegno.store.statements`): SQLAlchemy's work per call is most of their cost."""

    def _compiled(self, dialect: Dialect) -> dict[str, Compiled]:
        found: dict[str, Compiled] | None = self.__dict__.get("_agent_statements")
        if found is None:
            found = {
                "reported": Compiled(_REPORTED, dialect),
                "attempt": Compiled(AGENT_ATTEMPT_START, dialect),
                "event": Compiled(EVENT_INSERT, dialect),
                # a lifecycle task's "-ing" state, written with its attempt's start
                "instance_start": Compiled(INSTANCE_UPDATE, dialect),
            }
            self.__dict__["_agent_statements"] = found
        return found

    def _run_many(self, conn: Connection, name: str, rows: list[dict[str, Any]]) -> None:
        """Run a compiled write for `rows` in `conn`'s transaction."""
        if rows:
            self._compiled(conn.dialect)[name].run_many(conn.connection.cursor(), rows)

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def notify(self, channel: str) -> None:
        raise NotImplementedError

    def record_agent_result(self, attempt_id: str, agent: str, report: AgentReport) -> str:
        """Keep an attempt's result for its owner to apply; the first delivery wins.

        ACCEPTED when recorded, DUPLICATE when a result was recorded already, CONFLICT when
        `agent` does not hold the attempt (lost, killed, never started), UNKNOWN. A result
        for an execution nobody runs any more (force-cancelled) also ends the attempt.
        """
        with self._write() as conn:
            (answer,) = self._record(conn, None, agent, [Delivery(attempt_id, report)])
            notified = answer == ACCEPTED and notify_results(conn)
        if answer == ACCEPTED and not notified:
            self.notify(RESULTS_CHANNEL)
        return answer

    def _record(
        self, conn: Connection, queue: str | None, agent: str, deliveries: Sequence[Delivery]
    ) -> list[str]:
        """Record results in `conn`'s transaction; one answer per delivery, in order.

        An attempt of another queue than `queue` (when given) is UNKNOWN to this queue.
        """
        ids = list({delivery.attempt_id for delivery in deliveries})
        found = {row.attempt_id: row for row in conn.execute(_HELD_ATTEMPTS, {"b_ids": ids})}
        missing = [attempt_id for attempt_id in ids if attempt_id not in found]
        claimed = (
            {
                row[0]
                for row in conn.execute(
                    select(t.tasks.c.attempt_id).where(t.tasks.c.attempt_id.in_(missing))
                )
            }
            if missing
            else set()
        )
        answers, reported, events = self._judge(found, claimed, queue, agent, deliveries)
        self._run_many(conn, "reported", reported)
        self._run_many(conn, "event", events)
        return answers

    def _judge(
        self,
        found: dict[str, Any],
        claimed: set[str],
        queue: str | None,
        agent: str,
        deliveries: Sequence[Delivery],
    ) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        """The answer to each delivery, and the rows that keep the accepted ones: `found`
        are the rows of `_HELD_ATTEMPTS` by attempt id, `claimed` the attempt ids of the
        others that a task holds (a claim never started: CONFLICT, not UNKNOWN)."""
        now = time.time()
        answers: list[str] = []
        reported: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        done: set[str] = set()
        for delivery in deliveries:
            row = found.get(delivery.attempt_id)
            if row is None:
                answers.append(CONFLICT if delivery.attempt_id in claimed else UNKNOWN)
            elif queue is not None and row.queue != queue:
                answers.append(UNKNOWN)  # not an attempt of this queue
            elif row.worker != f"agent {delivery.agent or agent}":
                answers.append(CONFLICT)
            elif row.report_outcome is not None or delivery.attempt_id in done:
                answers.append(DUPLICATE)
            elif (
                row.held_id != delivery.attempt_id
                or row.holder != (delivery.agent or agent)
                or row.status != TaskState.STARTED.value
                or row.outcome != "running"
            ):
                answers.append(CONFLICT)
            else:
                answers.append(ACCEPTED)
                done.add(delivery.attempt_id)
                self._keep(row, delivery.report, now, reported, events)
        return answers, reported, events

    @staticmethod
    def _keep(
        row: Any,
        report: AgentReport,
        now: float,
        reported: list[dict[str, Any]],
        events: list[dict[str, Any]],
    ) -> None:
        orphan = row.execution_status not in _ACTIVE or (
            row.execution_status == ExecutionState.FORCE_CANCELLING.value
        )
        ended = "succeeded" if report.outcome == "succeeded" else "failed"
        if report.outcome == "released":
            ended = "released"
        reported.append(
            {
                "b_attempt_id": row.attempt_id,
                "b_outcome": report.outcome,
                "b_result": report.result_json,
                "b_error": report.error,
                "b_recoverable": int(report.recoverable),
                "b_retry_after": report.retry_after,
                "b_at": now,
                "b_instances": report.instances_json,
                "b_ended": ended if orphan else "running",
                "b_ended_at": now if orphan else None,
                "b_ended_error": report.error if orphan else None,
            }
        )
        where = (row.execution_id, row.graph, row.key)
        events.extend(
            event_row(*where, "log", log.message, log.level, log.created_at or now)
            for log in report.logs
        )
        if orphan:  # nobody applies it: a late result, kept in the attempt's history
            message = (
                f"Task '{row.key}' attempt {row.number + 1} ended after it was "
                f"abandoned: {report.outcome} (ignored)"
            )
            events.append(event_row(*where, "task_late_result", message, "warning", now))

    # the owner's view ------------------------------------------------------------------

    @retried("execution {execution_id}: reading its agents' tasks")
    def awaited_agent_tasks(
        self, execution_id: str, task_ids: Collection[int], reported_only: bool = False
    ) -> list[AwaitedTask]:
        """The claimed ones of the agent tasks an owner awaits: when their holder last
        showed it holds them, and any result recorded for the attempt it holds.

        `reported_only`: only those whose result is recorded (what a notification means).
        """
        if not task_ids:
            return []
        query = _REPORTED_TASKS if reported_only else _CLAIMED_TASKS
        wanted = task_ids  # a set: looked up, not copied
        with self._read() as conn:
            rows = [
                row
                for row in conn.execute(query, {"b_execution_id": execution_id})
                if row.id in wanted
            ]
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
                    instances_json=row.report_instances,
                ),
            )
            for row in rows
        ]
