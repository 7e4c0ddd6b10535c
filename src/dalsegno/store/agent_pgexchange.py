"""The exchange on PostgreSQL in two round trips (`AgentQueue.exchange_agent_tasks`).

The same transaction as on SQLite (docs/agents.md, "Exchange"): the results recorded, the
claimed tasks started, their attempt rows and events, one commit. What differs is how it
travels: in pipeline mode on the driver's connection, so the statements whose answer is
not needed wait for nothing, and one statement picks, locks and starts the tasks:

1. `BEGIN`, the delivered attempts' rows, and the claim: a `MATERIALIZED` CTE picks the
   queue's sent, unheld tasks `FOR UPDATE SKIP LOCKED` (concurrent claims get disjoint
   sets) and their executions' rows `FOR KEY SHARE`, and the UPDATE starts them. A
   cancel takes the execution's row `FOR UPDATE` (`request_cancel`), which waits for the
   claims under way and makes the next ones wait and see it: it commits before a claim
   (which then starts nothing) or after it (and its owner sees the tasks started). The
   owner's lease renewal, in each of its batches, waits for no claim (`FOR SHARE` made
   every claim wait for the owner's commit, and the owner for the claims'). The UPDATE
   returns what an assignment needs (its graph's name, and `tasks.resume`, the
   owner's word on `ctx.resume`). It finds the picked rows by their key and nothing
   else: they are locked, so the CTE's conditions still hold. With those conditions
   repeated, a planner whose statistics were older than the queue scanned every
   unheld task (`ix_tasks_holder`) to find them. One flush, one wait.
2. The results kept, the log events, the started attempts and their events, `COMMIT`:
   one sync, one wait.

The NOTIFY that wakes the owners (`dalsegno_agent_results`) is not in that transaction:
a transaction that notifies holds PostgreSQL's one notification lock from its commit
until its WAL is flushed, so the exchanges of all agents (and every other notifying
transaction of the server) would commit one after the other. It is sent after the
commit by a thread of the store, one at a time (one statement in autocommit), and the
requests that come while one is sent make a single one after it: an owner always hears
of a result committed before its wake-up, and reads every claimed task at least every
second anyway.

psycopg prepares a statement on a pooled connection after five runs, and PostgreSQL then
keeps its generic plan when that plan is as good as a fresh one. The claim's generic plan
reads the rows it takes (tested). The delivered attempt is looked up by equality on its
unique key when the call delivers one result: `= ANY` of one element is planned afresh at
every call (a 4-table join, 0.3 ms). The store's reads end with COMMIT
(`PostgresStore._read`): at a ROLLBACK, psycopg forgets what it prepared.

A pass that took fewer tasks than asked (in READ COMMITTED a row another claim changed
after this statement's snapshot drops out) is tried again while the queue shows
claimable tasks, as `AgentQueue._take` does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine

from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.store import tables as t
from dalsegno.store.agent_records import RESULTS_CHANNEL, Exchange, Exchanged
from dalsegno.store.agent_results import ACCEPTED, HELD_ATTEMPTS
from dalsegno.store.pgdriver import autocommit, named

if TYPE_CHECKING:
    from dalsegno.store.agents import AgentQueue

log = logging.getLogger("dalsegno.store")

CLAIM_PASSES = 5

# BEGIN is sent by hand, in the pipeline with the first statements (psycopg would send
# its own BEGIN and wait for its answer first).
_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"

_CLAIM = """
WITH picked AS MATERIALIZED (
    SELECT tasks.id FROM tasks JOIN executions ON executions.id = tasks.execution_id
    WHERE tasks.agent = %(queue)s AND tasks.status = %(sent)s AND tasks.holder IS NULL
        AND executions.status = %(running)s
    ORDER BY tasks.id
    LIMIT %(limit)s
    FOR UPDATE OF tasks SKIP LOCKED
    FOR KEY SHARE OF executions
)
UPDATE tasks SET
    holder = %(agent)s,
    attempt_id = %(prefix)s::text || tasks.id::text,
    claimed_at = %(now)s,
    status = %(started)s,
    attempts = tasks.attempts + 1,
    started_at = %(now)s,
    ended_at = NULL,
    next_run_at = NULL
FROM picked
WHERE tasks.id = picked.id
RETURNING tasks.id, tasks.attempt_id, tasks.execution_id, tasks.graph_id, tasks.key,
    tasks.operation, tasks.kwargs, tasks.retries, tasks.max_retries, tasks.attempts,
    tasks.timeout, tasks.resume, tasks.instance,
    (SELECT graphs.name FROM graphs WHERE graphs.id = tasks.graph_id) AS graph
"""

_NOTIFY = f"NOTIFY {RESULTS_CHANNEL}"

_ANY_UNHELD = """
SELECT EXISTS (
    SELECT 1 FROM tasks JOIN executions ON executions.id = tasks.execution_id
    WHERE tasks.agent = %(queue)s AND tasks.status = %(sent)s AND tasks.holder IS NULL
        AND executions.status = %(running)s
)
"""


class Coalesced:
    """Calls `send` in a thread of its own after each `request()`: one call at a time, and
    the requests made while one runs are answered by a single call after it."""

    def __init__(self, send: Callable[[], None]) -> None:
        self._send = send
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        self._wanted.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dalsegno-agent-results-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self._send()
            except Exception:  # the owners look at least every second anyway
                log.warning("notifying the owners of agents' results failed", exc_info=True)


class PgExchange:
    """The statements of the exchange on PostgreSQL, compiled once for `engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.notifier = Coalesced(self._notify)
        ids = any_(bindparam("b_ids", type_=ARRAY(String)))
        self.held = str(
            HELD_ATTEMPTS.where(t.attempts.c.attempt_id == ids).compile(dialect=engine.dialect)
        )
        # One result (a slot's usual call): an equality on the unique key, whose plan
        # PostgreSQL keeps; for `= ANY(...)` it plans the 4-table join at every call.
        one = bindparam("b_id", type_=String)
        self.held_one = str(
            HELD_ATTEMPTS.where(t.attempts.c.attempt_id == one).compile(dialect=engine.dialect)
        )
        self.claimed = str(
            select(t.tasks.c.attempt_id)
            .where(t.tasks.c.attempt_id == ids)
            .compile(dialect=engine.dialect)
        )

    def run(self, store: AgentQueue, exchange: Exchange) -> Exchanged:
        """Record `exchange`'s results, then claim and start up to its limit, in one
        transaction (the caller turns a lost connection into the store's fault)."""
        with autocommit(self.engine) as pg:
            try:
                with pg.pipeline():
                    result = self._exchange(store, pg, exchange)
            except BaseException:
                with contextlib.suppress(Exception):
                    pg.rollback()
                raise
        if ACCEPTED in result.answers:
            self.notifier.request()  # after the commit: the owners find what they are told of
        return result

    def _notify(self) -> None:
        """NOTIFY the owners, as one statement in autocommit on a pooled connection: one
        round trip (a transaction through the engine costs three, and its Python more)."""
        with autocommit(self.engine) as pg:
            pg.execute(_NOTIFY)

    def _exchange(self, store: AgentQueue, pg: Any, exchange: Exchange) -> Exchanged:
        from dalsegno.store.agents import _now, assignment_of, started_rows
        from dalsegno.store.instances import instance_start_rows

        writes = pg.cursor()
        writes.execute(_BEGIN)
        held = named(pg)
        ids = list({delivery.attempt_id for delivery in exchange.deliveries})
        if len(ids) == 1:
            held.execute(self.held_one, {"b_id": ids[0]})
        elif ids:
            held.execute(self.held, {"b_ids": ids})
        params = {
            "queue": exchange.queue,
            "agent": exchange.agent,
            "prefix": f"{exchange.claim_id}-",
            "now": _now(),
            "sent": TaskState.SENT.value,
            "started": TaskState.STARTED.value,
            "running": ExecutionState.STARTED.value,
        }
        claim = named(pg)
        if exchange.limit:
            claim.execute(_CLAIM, {**params, "limit": exchange.limit})
        # the first wait: BEGIN, the attempts' rows and the claim travel together
        found = {row.attempt_id: row for row in held.fetchall()} if ids else {}
        taken = self._take(pg, claim, params, exchange.limit) if exchange.limit else []
        compiled = store._compiled(self.engine.dialect)
        answers: list[str] = []
        if ids:
            answers = self._record(store, pg, found, writes, exchange)
        assignments = [
            assignment_of(row, row.graph, started=True)
            for row in sorted(taken, key=lambda row: row.id)
        ]
        if assignments:
            attempts, events = started_rows(exchange.agent, assignments)
            compiled["attempt"].run_many(writes, attempts)
            compiled["event"].run_many(writes, events)
            starts = instance_start_rows([a.instance for a in assignments])
            if starts:  # lifecycle tasks: their "-ing" state, with their attempts' start
                compiled["instance_start"].run_many(writes, starts)
        writes.execute("COMMIT")  # the second wait: the pipeline's sync, when it ends
        return Exchanged(answers, assignments)

    def _record(
        self, store: AgentQueue, pg: Any, found: dict[str, Any], writes: Any, exchange: Exchange
    ) -> list[str]:
        """Judge the delivered results (`found`: the rows of their attempts); queue the
        writes that keep the accepted ones."""
        missing = [d.attempt_id for d in exchange.deliveries if d.attempt_id not in found]
        claimed: set[str] = set()
        if missing:  # rare: a claim of the first protocol, never started, or unknown ids
            others = pg.cursor()
            others.execute(self.claimed, {"b_ids": missing})
            claimed = {row[0] for row in others.fetchall()}
        answers, reported, events = store._judge(
            found, claimed, exchange.queue, exchange.agent, exchange.deliveries
        )
        compiled = store._compiled(self.engine.dialect)
        compiled["reported"].run_many(writes, reported)
        compiled["event"].run_many(writes, events)
        return answers

    @staticmethod
    def _take(pg: Any, claim: Any, params: dict[str, Any], limit: int) -> list[Any]:
        """The rows the claim started, with more passes while it took fewer than `limit`
        and the queue shows claimable tasks."""
        taken: list[Any] = list(claim.fetchall())
        for _ in range(CLAIM_PASSES - 1):
            if len(taken) >= limit:
                break
            look = pg.cursor()
            look.execute(_ANY_UNHELD, params)
            if not look.fetchone()[0]:
                break
            again = named(pg)
            again.execute(_CLAIM, {**params, "limit": limit - len(taken)})
            taken += again.fetchall()
        return taken


def pg_exchange(store: AgentQueue, engine: Engine) -> PgExchange:
    """The store's `PgExchange`, made once."""
    found: PgExchange | None = store.__dict__.get("_pg_exchange")
    if found is None:
        found = PgExchange(engine)
        store.__dict__["_pg_exchange"] = found
    return found


__all__ = ["PgExchange", "pg_exchange"]
