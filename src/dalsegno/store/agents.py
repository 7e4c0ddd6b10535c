"""The agent queue in the store: claims, starts, heartbeats, agents, tokens.

A mixin `SQLStore` inherits (with `AgentResults`, the results and the owner's view). What
an agent does here touches only the agent-queue columns of a task (`holder`,
`attempt_id`, `claimed_at`), the `sent -> started` move of the tasks it claims, and the
report columns of its attempts: every other move of an agent task (applying a result,
requeueing a lost attempt, a kill) is the execution owner's, fenced by its lease token
like any of its writes. docs/agents.md tells the whole protocol.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, Integer, String, bindparam, cast, insert, select, update

from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.store import tables as t
from dalsegno.store.agent_pgexchange import pg_exchange
from dalsegno.store.agent_records import (
    RESULTS_CHANNEL,
    AgentBeat,
    AgentRecord,
    Assignment,
    Exchange,
    Exchanged,
    HeldTask,
)
from dalsegno.store.agent_results import (
    ACCEPTED,
    CONFLICT,
    DUPLICATE,
    UNKNOWN,
    AgentResults,
    event_row,
    notify_results,
)
from dalsegno.store.instances import instance_start_rows

__all__ = ["ACCEPTED", "CONFLICT", "DUPLICATE", "STARTED", "UNKNOWN", "AgentQueue"]

STARTED = "started"
_IN_FLIGHT = [TaskState.SENT.value, TaskState.STARTED.value]
CLAIM_PASSES = 5  # statements a claim tries before it says the queue is empty
# An idle agent's beat (it lists no attempt) is written only when the stored one is
# `AgentBeat.idle_write_every` seconds old: a fleet of idle agents costs few commits, and
# the beats this process wrote are remembered, so most idle beats cost no read either.
# A beat that lists attempts is always written.
BEATS_KEPT = 100_000  # agents whose last written beat this process remembers


def _now() -> float:
    return time.time()


def _beat_key(beat: AgentBeat) -> tuple[str, str, int, int]:
    return (beat.queue, beat.host, beat.pid, beat.concurrency)


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


# What an agent needs of a task it holds (an `Assignment`, with its graph's name apart).
_ASSIGNED = (
    t.tasks.c.id,
    t.tasks.c.attempt_id,
    t.tasks.c.execution_id,
    t.tasks.c.graph_id,
    t.tasks.c.key,
    t.tasks.c.operation,
    t.tasks.c.kwargs,
    t.tasks.c.retries,
    t.tasks.c.max_retries,
    t.tasks.c.attempts,
    t.tasks.c.timeout,
    t.tasks.c.resume,
    t.tasks.c.instance,
)
# The statements of a claim, built once (their SQL is compiled once and cached).
_CANDIDATES = (
    _unheld(bindparam("b_queue"))  # type: ignore[arg-type]
    .add_columns(t.tasks.c.execution_id)
    .order_by(t.tasks.c.id)
    .limit(bindparam("b_limit", type_=Integer))
    .with_for_update(skip_locked=True, of=t.tasks)
)
_ANY_UNHELD = _unheld(bindparam("b_queue")).limit(1)  # type: ignore[arg-type]
_HOLD = {
    "holder": bindparam("b_agent"),
    "attempt_id": bindparam("b_prefix", type_=String) + cast(t.tasks.c.id, String),
    "claimed_at": bindparam("b_now"),
}
_TAKE = update(t.tasks).where(
    t.tasks.c.id.in_(bindparam("b_ids", expanding=True)),
    t.tasks.c.holder.is_(None),
    t.tasks.c.status == TaskState.SENT.value,
)
_TAKE_HELD = _TAKE.values(_HOLD).returning(*_ASSIGNED)
_TAKE_STARTED = _TAKE.values(
    {
        **_HOLD,
        "status": TaskState.STARTED.value,
        "attempts": t.tasks.c.attempts + 1,
        "started_at": bindparam("b_now"),
        "ended_at": None,
        "next_run_at": None,
    }
).returning(*_ASSIGNED)
_STILL_STARTED = (
    select(t.executions.c.id)
    .where(
        t.executions.c.id.in_(bindparam("b_ids", expanding=True)),
        t.executions.c.status == ExecutionState.STARTED.value,
    )
    .with_for_update(read=True)
)
_GRAPH_NAMES = select(t.graphs.c.id, t.graphs.c.name).where(
    t.graphs.c.id.in_(bindparam("b_ids", expanding=True))
)
# The tasks held under attempt ids of one claim (`CLAIM_ID-TASK_ID`): an index range.
_HELD_BY_CLAIM = select(*_ASSIGNED).where(
    t.tasks.c.attempt_id >= bindparam("b_low"),
    t.tasks.c.attempt_id < bindparam("b_high"),
    t.tasks.c.holder == bindparam("b_agent"),
    t.tasks.c.status == TaskState.STARTED.value,
)
_RENEW = (
    update(t.tasks)
    .where(t.tasks.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(claimed_at=bindparam("b_now"))
)
GRAPH_CACHE = 10_000  # graph names kept (a graph's name never changes)


def started_rows(
    agent: str, started: Sequence[Assignment]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The attempt rows and `task_started` events of tasks `agent` just started."""
    now = _now()
    attempts = [
        {
            "task_id": task.task_id,
            "number": task.attempt,
            "outcome": "running",
            "worker": f"agent {agent}",
            "started_at": now,
            "attempt_id": task.attempt_id,
        }
        for task in started
    ]
    events = []
    for task in started:
        retry = f" [retry {task.retries}/{task.max_retries}]" if task.retries else ""
        message = f"Task started '{task.task_key}' on agent {agent}{retry}"
        events.append(
            event_row(
                task.execution_id, task.graph, task.task_key, "task_started", message, "info", now
            )
        )
    return attempts, events


def assignment_of(row: Any, graph: str, *, started: bool) -> Assignment:
    """The assignment of a held task `row` (the columns of `_ASSIGNED`). Its ctx.resume
    is what the owner decided when it sent the task (`tasks.resume`: true when its
    attempt was lost on its agent and requeued; false after a reset)."""
    return Assignment(
        attempt_id=row.attempt_id,
        task_id=row.id,
        execution_id=row.execution_id,
        graph=graph,
        task_key=row.key,
        operation=row.operation,
        kwargs_json=row.kwargs,
        retries=row.retries,
        resume=bool(row.resume),
        timeout=row.timeout,
        attempt=row.attempts - 1 if started else row.attempts,
        max_retries=row.max_retries,
        instance=row.instance,
    )


class AgentQueue(AgentResults):
    """The agent queue's queries; `_write` and `_read` come from `SQLStore`."""

    # claims ------------------------------------------------------------------------

    def claim_agent_tasks(self, queue: str, agent: str, limit: int) -> list[Assignment]:
        """Hold up to `limit` sent, unheld tasks of `queue` whose execution is `started`
        (the first protocol: they stay `sent` until the agent reports `started`).

        Each gets a fresh attempt id. On PostgreSQL the rows are picked `FOR UPDATE SKIP
        LOCKED`, so concurrent claims get disjoint sets; SQLite has one writer at a time.
        """
        with self._write() as conn:
            claimed = self._take(conn, queue, agent, limit, uuid.uuid4().hex, start=False)
            return self._assignments(conn, claimed, started=False) if claimed else []

    def exchange_agent_tasks(self, exchange: Exchange) -> Exchanged:
        """Record an agent's results, then claim and start up to `exchange.limit` tasks of
        its queue, in one transaction (one commit for the whole call).

        A started task is durable before the agent has its assignment, so it is durable
        before the operation's first line runs. A claim id seen before (its answer was
        lost) first gets back the tasks that claim started and the agent still holds.
        """
        engine: Engine = self.__dict__["_write_engine"]
        if engine.dialect.name == "postgresql" and not exchange.repeat:
            with self._faults():  # a lost connection: the store's fault, as for any write
                return pg_exchange(self, engine).run(self, exchange)
        if (
            not exchange.deliveries
            and not exchange.repeat
            and not self.claimable_queues([exchange.queue])
        ):
            return Exchanged([], [])  # nothing to record, nothing to claim: no write lock
        answers: list[str] = []
        with self._write() as conn:
            if exchange.deliveries:
                answers = self._record(conn, exchange.queue, exchange.agent, exchange.deliveries)
            notified = ACCEPTED in answers and notify_results(conn)
            assignments: list[Assignment] = []
            if exchange.limit:
                held = self._held_by_claim(conn, exchange) if exchange.repeat else []
                taken = self._take(
                    conn,
                    exchange.queue,
                    exchange.agent,
                    exchange.limit - len(held),
                    exchange.claim_id,
                    start=True,
                )
                if held or taken:
                    assignments = self._assignments(conn, [*held, *taken], started=True)
                    fresh = {row.id for row in taken}
                    self._started(
                        conn, exchange.agent, [a for a in assignments if a.task_id in fresh]
                    )
        if ACCEPTED in answers and not notified:
            self.notify(RESULTS_CHANNEL)
        return Exchanged(answers, assignments)

    def _faults(self) -> AbstractContextManager[None]:
        """Turns a lost connection into the store's fault (PostgreSQL's store says how)."""
        return contextlib.nullcontext()

    def claimable_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of `queues` have a task a claim would take now (a read: no write lock)."""
        if not queues:
            return set()
        tasks = t.tasks
        query = (
            select(tasks.c.agent)
            .join(t.executions, t.executions.c.id == tasks.c.execution_id)
            .where(
                tasks.c.agent.in_(list(queues)),
                tasks.c.status == TaskState.SENT.value,
                tasks.c.holder.is_(None),
                t.executions.c.status == ExecutionState.STARTED.value,
            )
            .distinct()
        )
        with self._read() as conn:
            return {str(row[0]) for row in conn.execute(query)}

    def _held_by_claim(self, conn: Connection, exchange: Exchange) -> list[Any]:
        """The tasks an earlier call with this claim id started and the agent still holds;
        their claim is renewed (the agent lists them in its heartbeats from now on)."""
        claim_id = exchange.claim_id
        bounds = {"b_low": f"{claim_id}-", "b_high": f"{claim_id}.", "b_agent": exchange.agent}
        found = list(conn.execute(_HELD_BY_CLAIM, bounds).all()[: exchange.limit])  # "." > "-"
        if found:
            conn.execute(_RENEW, {"b_ids": [row.id for row in found], "b_now": _now()})
        return found

    def _take(
        self, conn: Connection, queue: str, agent: str, limit: int, nonce: str, *, start: bool
    ) -> list[Any]:
        """Hold up to `limit` claimable tasks of `queue` for `agent`; with `start`, also
        move them `sent -> started` (the caller adds their attempt rows and events).
        Returns their rows (the columns of an assignment)."""
        params: dict[str, Any] = {
            "b_queue": queue,
            "b_agent": agent,
            "b_prefix": f"{nonce}-",
            "b_now": _now(),
        }
        claimed: list[Any] = []
        # In READ COMMITTED, a row another claim updated between this statement's
        # snapshot and its lock drops out after the LIMIT: a short pass is not "empty".
        for _ in range(CLAIM_PASSES):
            # two statements: `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` may run
            # its subquery once per row, and then hold more than n
            rows = conn.execute(_CANDIDATES, {**params, "b_limit": limit - len(claimed)}).all()
            picked = [row[0] for row in rows]
            if start and picked and conn.dialect.name == "postgresql":
                picked = self._still_started(conn, rows)
            if picked:
                statement = _TAKE_STARTED if start else _TAKE_HELD
                claimed += conn.execute(statement, {**params, "b_ids": picked}).all()
            if len(claimed) >= limit or not conn.execute(_ANY_UNHELD, params).first():
                break
        return claimed

    @staticmethod
    def _still_started(conn: Connection, rows: Sequence[Any]) -> list[int]:
        """The picked tasks whose execution is still `started`, its row read `FOR SHARE`:
        a cancel commits before this claim (and the task is not started) or after it (and
        the owner, looking after the cancel, sees the task started and awaits it). On
        SQLite the claim's transaction holds the only write lock: nothing commits between.
        """
        running = {
            row[0] for row in conn.execute(_STILL_STARTED, {"b_ids": list({r[1] for r in rows})})
        }
        return [row[0] for row in rows if row[1] in running]

    def _assignments(
        self, conn: Connection, rows: Sequence[Any], *, started: bool
    ) -> list[Assignment]:
        """Assignments of the held tasks `rows` (with the columns of `_ASSIGNED`)."""
        graphs = self._graph_names(conn, {row.graph_id for row in rows})
        return [
            assignment_of(row, graphs[row.graph_id], started=started)
            for row in sorted(rows, key=lambda row: row.id)
        ]

    def _graph_names(self, conn: Connection, graph_ids: set[int]) -> dict[int, str]:
        cache: dict[int, str] = self.__dict__.setdefault("_graph_name_cache", {})
        missing = [graph_id for graph_id in graph_ids if graph_id not in cache]
        if missing:
            if len(cache) > GRAPH_CACHE:
                cache.clear()
            cache.update(
                (row.id, row.name) for row in conn.execute(_GRAPH_NAMES, {"b_ids": missing})
            )
        return {graph_id: cache[graph_id] for graph_id in graph_ids}

    def _started(self, conn: Connection, agent: str, started: Sequence[Assignment]) -> None:
        """The attempt rows and `task_started` events of tasks `agent` just started, and
        the "-ing" state of the instances of the lifecycle tasks among them."""
        attempts, events = started_rows(agent, started)
        self._run_many(conn, "attempt", attempts)
        self._run_many(conn, "event", events)
        self._run_many(conn, "instance_start", instance_start_rows([a.instance for a in started]))

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
                select(tasks.c.id, tasks.c.execution_id, tasks.c.status, tasks.c.holder).where(
                    tasks.c.attempt_id == attempt_id
                )
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
            held = conn.execute(select(*_ASSIGNED).where(tasks.c.id == row.id)).all()
            (task,) = self._assignments(conn, held, started=True)
            self._started(conn, agent, [task])
            return STARTED

    # heartbeats and agents -----------------------------------------------------------

    def agent_heartbeat(self, beat: AgentBeat) -> tuple[list[str], list[str]]:
        """Record the agent's beat; returns the attempts to kill and those it does not hold."""
        now = _now()
        if not beat.attempt_ids and self._fresh(beat, now):
            return [], []
        self._beat_written(beat, now)
        try:
            return self._write_beat(beat, now)
        except BaseException:
            self._beats().pop(beat.agent, None)  # not written: the next beat writes it
            raise

    def _write_beat(self, beat: AgentBeat, now: float) -> tuple[list[str], list[str]]:
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

    def agents_waiting(self, agents: Sequence[str]) -> None:
        """The agents `agents` have a claim waiting on this manager: that is their beat,
        written for them all at once (`last_heartbeat_at`; an agent with no row yet gets
        one with its first heartbeat)."""
        if not agents:
            return
        now = _now()
        with self._write() as conn:
            conn.execute(
                update(t.agents)
                .where(t.agents.c.name.in_(list(agents)))
                .values(last_heartbeat_at=now)
            )
        beats = self._beats()
        for name in agents:  # what the row says besides is unknown here: read if asked
            beats.pop(name, None)

    def _fresh(self, beat: AgentBeat, now: float) -> bool:
        """Whether the store shows this agent as it beats, written less than
        `beat.idle_write_every` seconds ago: known from this process's own last write, else
        read (another manager may have written it). No write lock either way."""
        written = self._beats().get(beat.agent)
        if (
            written is not None
            and written[0] == _beat_key(beat)
            and now - written[1] < beat.idle_write_every
        ):
            return True
        agents = t.agents
        with self._read() as conn:
            row = conn.execute(
                select(agents.c.last_heartbeat_at).where(
                    agents.c.name == beat.agent,
                    agents.c.queue == beat.queue,
                    agents.c.host == beat.host,
                    agents.c.pid == beat.pid,
                    agents.c.concurrency == beat.concurrency,
                )
            ).first()
        if row is None or now - row[0] >= beat.idle_write_every:
            return False
        self._beat_written(beat, float(row[0]))
        return True

    def _beats(self) -> dict[str, tuple[tuple[str, str, int, int], float]]:
        """Agent name -> what its last written beat said and when (this process's memory)."""
        found: dict[str, tuple[tuple[str, str, int, int], float]]
        found = self.__dict__.setdefault("_agent_beats", {})
        return found

    def _beat_written(self, beat: AgentBeat, at: float) -> None:
        beats = self._beats()
        if len(beats) > BEATS_KEPT:
            beats.clear()
        beats[beat.agent] = (_beat_key(beat), at)

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
