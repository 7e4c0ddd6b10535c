"""The agent queue as a service: what the REST API's `/agents` routes and the CLI call.

Agents claim by long-poll: a claim that finds nothing waits until tasks of its queue are
claimable (`dalsegno.service.agent_signals` looks when the store's
`dalsegno_agent_tasks` channel is notified, and at least every `RECHECK` seconds), until
`wait` seconds have passed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dalsegno.engine.agents import agent_timeout
from dalsegno.engine.deployments import DeploymentReads
from dalsegno.engine.references import resolve_operation
from dalsegno.model.errors import ConflictError, DalsegnoError, NotFoundError, RefusedError
from dalsegno.model.limits import MAX_RESULT, too_large
from dalsegno.model.names import NAME_LIMIT, check_name
from dalsegno.service.access import AccessService, IssuedToken
from dalsegno.service.agent_signals import TaskSignals
from dalsegno.service.tokens import token_hash
from dalsegno.store.agent_records import (
    OUTCOMES,
    REPORTED,
    TASKS_CHANNEL,
    AgentBeat,
    AgentRecord,
    AgentReport,
    Assignment,
    Exchange,
)
from dalsegno.store.agents import ACCEPTED, CONFLICT, DUPLICATE, STARTED, UNKNOWN
from dalsegno.store.base import Store

if TYPE_CHECKING:
    from dalsegno.service.executions import ExecutionService

RECHECK = 2.0  # seconds: the slow look that covers a lost notification
MAX_WAIT = 30.0
MAX_LIMIT = 100
HEARTBEAT_INTERVAL = 2.0  # seconds the manager suggests between two heartbeats
MAX_RESULTS = 1000  # results one exchange may deliver
CLAIM_ID = re.compile(r"[A-Za-z0-9_]{8,40}")
__all__ = ["NAME_LIMIT", "AgentService", "check_name", "token_hash"]


class AgentService:
    """Claims, starts, results and heartbeats of agents; agents and their tokens."""

    def __init__(self, service: ExecutionService, max_wait: float = MAX_WAIT) -> None:
        self.service = service
        self.max_wait = max_wait  # a claim never waits longer, whatever it asks
        self._signals = TaskSignals(lambda: self.service.store, self._keep_waiting)
        self._kept_at = 0.0  # when the beats of agents whose claims wait were last kept
        self.closing = False

    def stop_waiting(self) -> None:
        """The manager is stopping: every waiting claim answers now, and none waits again
        (a stop must not wait up to 30 s for agents' long-polls before its hand-over)."""
        self.closing = True
        self._signals.wake_all()

    @property
    def store(self) -> Store:
        return self.service.store

    # tokens ------------------------------------------------------------------------

    def create_token(self, queue: str, created_by: str, name: str | None = None) -> IssuedToken:
        """A new token scoped to `queue` (listed and revoked with the other tokens);
        only its hash is stored."""
        return AccessService.on(self.store).issue_agent_token(queue, created_by, name)

    def scopes_of(self, token: str) -> list[str] | None:
        """`queue:NAME` for an agent token the store knows (looked up by its hash), else None."""
        queue = self.store.agent_token_queue(token_hash(token))
        return None if queue is None else [f"queue:{queue}"]

    # the protocol ------------------------------------------------------------------

    def check_claim(self, queue: str, agent: str, limit: int, wait: float) -> float:
        """Refuse a malformed claim; returns how long it may wait (`max_wait` at most)."""
        check_name("a queue name", queue)
        check_name("an agent name", agent)
        if not 1 <= limit <= MAX_LIMIT:
            msg = f"limit must be 1 to {MAX_LIMIT}, not {limit}"
            raise RefusedError(msg)
        if not 0 <= wait <= MAX_WAIT:
            msg = f"wait must be 0 to {MAX_WAIT:g} seconds, not {wait}"
            raise RefusedError(msg)
        return 0.0 if self.closing else min(wait, self.max_wait)

    def claim_now(self, queue: str, agent: str, limit: int) -> list[Any]:
        """Tasks of `queue` now held by `agent`, without waiting (maybe none)."""
        return assignments_json(self.store, self.store.claim_agent_tasks(queue, agent, limit))

    def on_tasks(
        self, queue: str, callback: Callable[[], None], agent: str | None = None
    ) -> Callable[[], None]:
        """Call `callback` whenever tasks of `queue` may be claimable; returns the undo.
        `agent`: the agent whose claim waits (its wait counts as its heartbeat)."""
        return self._signals.subscribe(queue, callback, agent)

    def _keep_waiting(self, agents: set[str]) -> None:
        """A claim that waits in a long-poll is its agent's heartbeat: every sixth of the
        agent timeout (half an idle agent's interval), one write renews the beats of all
        the agents whose claims wait here, so an agent that holds nothing need not beat
        while its claim waits (`dalsegno.agent.worker`)."""
        third = agent_timeout_of(self.service) / 3
        now = time.monotonic()
        if now - self._kept_at < third / 2:
            return
        self._kept_at = now
        self.store.agents_waiting(sorted(agents))

    def claim(self, queue: str, agent: str, limit: int = 1, wait: float = MAX_WAIT) -> list[Any]:
        """Tasks of `queue` now held by `agent`; waits up to `wait` s while there are none
        (in the calling thread: the REST API waits without one, see `dalsegno.api.agents`)."""
        deadline = time.monotonic() + self.check_claim(queue, agent, limit, wait)
        if wait > 0:
            self.store.wait_for_notification([TASKS_CHANNEL], 0)  # subscribe before looking
        while True:
            found = self.claim_now(queue, agent, limit)
            left = deadline - time.monotonic()
            if found or left <= 0 or self.closing:
                return found
            self.store.wait_for_notification([TASKS_CHANNEL], min(RECHECK, left))

    def check_exchange(self, exchange: Exchange, wait: float) -> float:
        """Refuse a malformed exchange; returns how long its claim may wait."""
        if exchange.limit == 0:
            check_name("a queue name", exchange.queue)
            check_name("an agent name", exchange.agent)
            wait = 0.0
        else:
            wait = self.check_claim(exchange.queue, exchange.agent, exchange.limit, wait)
        if not CLAIM_ID.fullmatch(exchange.claim_id):
            msg = f"claim_id must be 8 to 40 letters, digits or '_', not {exchange.claim_id!r}"
            raise RefusedError(msg)
        if len(exchange.deliveries) > MAX_RESULTS:
            msg = f"at most {MAX_RESULTS} results in one call, not {len(exchange.deliveries)}"
            raise RefusedError(msg)
        for delivery in exchange.deliveries:
            if delivery.report.outcome not in REPORTED:
                msg = f"outcome must be one of {', '.join(REPORTED)}: {delivery.report.outcome!r}"
                raise RefusedError(msg)
        return wait

    def exchange(self, exchange: Exchange) -> tuple[list[dict[str, Any]], list[Any]]:
        """Record the results, then claim and start tasks (without waiting): the answer
        for each result, in order, and the assignments (their tasks are `started`)."""
        exchange.deliveries = [
            replace(delivery, report=within_limits(delivery.report))
            for delivery in exchange.deliveries
        ]
        done = self.store.exchange_agent_tasks(exchange)
        answers = [
            {"attempt_id": delivery.attempt_id, "status": answer}
            for delivery, answer in zip(exchange.deliveries, done.answers, strict=True)
        ]
        return answers, assignments_json(self.store, done.assignments)

    def queue_of(self, attempt_id: str) -> str:
        """The queue an attempt belongs to; NotFoundError when the id is unknown."""
        queue = self.store.attempt_queue(attempt_id) if len(attempt_id) <= 64 else None
        if queue is None:
            msg = f"no such attempt: {attempt_id}"
            raise NotFoundError(msg)
        return queue

    def start(self, attempt_id: str, agent: str) -> dict[str, Any]:
        """The agent may run the operation now (`started` is durable)."""
        answer = self.store.start_agent_attempt(attempt_id, agent)
        if answer == UNKNOWN:
            msg = f"no such attempt: {attempt_id}"
            raise NotFoundError(msg)
        if answer != STARTED:
            msg = (
                f"attempt {attempt_id} is not held by agent {agent} any more"
                " (lost, cancelled, or its execution is not running): do not run it"
            )
            raise ConflictError(msg)
        return {"attempt_id": attempt_id, "status": "started"}

    def report(self, attempt_id: str, agent: str, report: AgentReport) -> dict[str, Any]:
        """Record an attempt's result for its owner; a second delivery is harmless."""
        if report.outcome not in OUTCOMES:
            msg = f"outcome must be one of {', '.join(OUTCOMES)}, not {report.outcome!r}"
            raise RefusedError(msg)
        answer = self.store.record_agent_result(attempt_id, agent, within_limits(report))
        if answer == UNKNOWN:
            msg = f"no such attempt: {attempt_id}"
            raise NotFoundError(msg)
        if answer == CONFLICT:
            msg = f"attempt {attempt_id} is not held by agent {agent}: its result is refused"
            raise ConflictError(msg)
        assert answer in (ACCEPTED, DUPLICATE)  # the store notified the owners
        return {"attempt_id": attempt_id, "accepted": True}

    def heartbeat(self, beat: AgentBeat) -> dict[str, Any]:
        check_name("a queue name", beat.queue)
        check_name("an agent name", beat.agent)
        # Three beats fit in the timeout, so one late beat never makes an agent look lost.
        # An idle agent (it lists no attempt) beats only that often: a fleet of idle agents
        # costs a manager little; a task it claims is counted from its claim, and its next
        # beat comes within a third of the timeout. Its beat is written every other beat at
        # most (when the stored one is two thirds of the timeout old): `agents list` never
        # shows a live agent silent for longer than the timeout.
        third = agent_timeout_of(self.service) / 3
        kill, unknown = self.store.agent_heartbeat(replace(beat, idle_write_every=2 * third))
        interval = min(HEARTBEAT_INTERVAL, third) if beat.attempt_ids else third
        # "waiting_beats": a claim that waits on this manager keeps its agent's beat
        return {"kill": kill, "unknown": unknown, "interval": interval, "waiting_beats": True}

    def list_agents(self) -> list[AgentRecord]:
        return self.store.list_agents()


def agent_timeout_of(service: ExecutionService) -> float:
    """The heartbeat timeout of agents for executions `service` runs (ValueError if bad)."""
    return agent_timeout(service.config)


def assignments_json(store: Store, assignments: list[Assignment]) -> list[dict[str, Any]]:
    """The assignments as the protocol sends them. A lifecycle task's carries what its
    operation sees (`lifecycle`: the instance view the manager-side path reads, read now,
    after the commit that started it and wrote its "-ing" state), or why it cannot run
    (`lifecycle_error`: its instance or deployment is gone; the agent fails the attempt,
    not recoverable, as a manager would). A read that fails is the call's failure: the
    agent asks again with the same claim id and gets its tasks back."""
    reads = DeploymentReads(store) if any(a.instance for a in assignments) else None
    found = []
    for assignment in assignments:
        document = assignment_json(assignment)
        if assignment.instance is not None and reads is not None:
            try:
                document["lifecycle"] = reads.task_view(assignment.instance)
            except NotFoundError as exc:
                document["lifecycle_error"] = str(exc)
        found.append(document)
    return found


def assignment_json(assignment: Assignment) -> dict[str, Any]:
    try:
        _, definition = resolve_operation(assignment.operation)
        process = definition.process
    except DalsegnoError:
        process = False  # the agent imports it itself; the manager may not have it
    return {
        "attempt_id": assignment.attempt_id,
        "execution_id": assignment.execution_id,
        "graph": assignment.graph,
        "task_key": assignment.task_key,
        "operation": assignment.operation,
        "kwargs": json.loads(assignment.kwargs_json),
        "retries": assignment.retries,
        "resume": assignment.resume,
        "idempotency_key": f"{assignment.execution_id}-{assignment.task_id}",
        "timeout": assignment.timeout,
        "process": process,
        "attempt": assignment.attempt,
    }


def agent_json(agent: AgentRecord) -> dict[str, Any]:
    return {
        "name": agent.name,
        "queue": agent.queue,
        "host": agent.host,
        "pid": agent.pid,
        "concurrency": agent.concurrency,
        "last_heartbeat_at": agent.last_heartbeat_at,
        "running": [
            {
                "attempt_id": held.attempt_id,
                "execution_id": held.execution_id,
                "graph": held.graph,
                "task_key": held.task_key,
                "status": held.status,
            }
            for held in agent.running
        ],
    }


def within_limits(report: AgentReport) -> AgentReport:
    """A result over `MAX_RESULT` fails its attempt, not retried, as on a manager (an
    agent of this version never sends one: its `run_operation` refuses it first)."""
    refused = too_large("the result", report.result_json or "null", MAX_RESULT)
    if refused is None:
        return report
    return replace(report, outcome="failed", result_json=None, error=refused, recoverable=False)
