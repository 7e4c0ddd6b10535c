"""The records of the agent queue, and the part of the `Store` protocol that serves it.

An agent task is `sent` when its owner hands it to a queue. An agent's exchange claims it
and starts it in one transaction (`sent -> started`, held by the agent under an attempt
id), and a later exchange delivers its result, kept on the attempt until the execution's
owner applies it. The first protocol (a claim that leaves the task `sent`, then `started`
and the result one call each) is still served for agents of that version.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dalsegno.model.states import TaskState

# Channels: tasks were sent (or requeued) to a queue; an agent reported a result.
TASKS_CHANNEL = "dalsegno_agent_tasks"
RESULTS_CHANNEL = "dalsegno_agent_results"

OUTCOMES = ("succeeded", "failed", "retry")
# An attempt the agent got but never ran (it was stopping): the owner queues it again.
RELEASED = "released"
REPORTED = (*OUTCOMES, RELEASED)


@dataclass(slots=True)
class Assignment:
    """A task claimed by an agent: what it needs to run the operation."""

    attempt_id: str
    task_id: int
    execution_id: str
    graph: str
    task_key: str
    operation: str
    kwargs_json: str
    retries: int
    resume: bool
    timeout: float | None
    attempt: int = 0  # the attempt's number (0 for the first), as `ctx.attempt`
    max_retries: int = 0
    instance: str | None = None  # a lifecycle task's instance binding (`tasks.instance`)


@dataclass(slots=True)
class AgentLog:
    level: str
    message: str
    created_at: float


@dataclass(slots=True)
class AgentReport:
    """The result of one attempt, as the agent delivered it."""

    outcome: str  # one of REPORTED
    result_json: str | None
    error: str | None
    recoverable: bool
    retry_after: float | None
    logs: list[AgentLog] = field(default_factory=list)
    # a lifecycle task's success: the instance changes, JSON (`engine.instances.changes_json`)
    instances_json: str | None = None


@dataclass(slots=True)
class AgentBeat:
    queue: str
    agent: str
    host: str
    pid: int
    concurrency: int
    attempt_ids: list[str]
    # An idle beat (no attempt listed) is not written while the stored one is younger
    # than this many seconds (the service asks for two thirds of the agent timeout).
    idle_write_every: float = 5.0


@dataclass(slots=True)
class Delivery:
    """A result an agent delivers for one of its attempts."""

    attempt_id: str
    report: AgentReport
    agent: str | None = None  # who ran it, when not the agent that delivers it


@dataclass(slots=True)
class Exchange:
    """One call of an agent: results to record, then up to `limit` tasks to claim and start.

    `claim_id` names the claim (the attempt ids it gives are `CLAIM_ID-TASK_ID`): the same
    id again with `repeat` (an answer that was lost) gets back what that claim took and
    still holds.
    """

    queue: str
    agent: str
    deliveries: list[Delivery]
    limit: int
    claim_id: str
    repeat: bool = False


@dataclass(slots=True)
class Exchanged:
    """What an exchange did: one answer per delivery (in order), and the tasks started."""

    answers: list[str]
    assignments: list[Assignment]


@dataclass(slots=True)
class HeldTask:
    attempt_id: str
    execution_id: str
    graph: str
    task_key: str
    status: str


@dataclass(slots=True)
class AgentRecord:
    name: str
    queue: str
    host: str
    pid: int
    concurrency: int
    last_heartbeat_at: float
    running: list[HeldTask]


@dataclass(slots=True)
class AwaitedTask:
    """An agent task its owner waits for, as the store has it now."""

    task_id: int
    status: TaskState
    attempts: int
    started_at: float | None
    holder: str | None
    attempt_id: str | None
    claimed_at: float | None  # the claim, renewed by each heartbeat that lists the attempt
    report: AgentReport | None  # the result of the current attempt, when recorded


class AgentQueueStore(Protocol):
    """The agent queue: claims, starts, results, heartbeats and agents (their tokens are in
    `AccessStore`)."""

    def claim_agent_tasks(self, queue: str, agent: str, limit: int) -> list[Assignment]: ...

    def exchange_agent_tasks(self, exchange: Exchange) -> Exchanged: ...

    def claimable_queues(self, queues: Sequence[str]) -> set[str]: ...

    def attempt_queue(self, attempt_id: str) -> str | None: ...

    def start_agent_attempt(self, attempt_id: str, agent: str) -> str: ...

    def record_agent_result(self, attempt_id: str, agent: str, report: AgentReport) -> str: ...

    def agent_heartbeat(self, beat: AgentBeat) -> tuple[list[str], list[str]]: ...

    def agents_waiting(self, agents: Sequence[str]) -> None: ...

    def list_agents(self) -> list[AgentRecord]: ...

    def awaited_agent_tasks(
        self, execution_id: str, task_ids: Collection[int], reported_only: bool = False
    ) -> list[AwaitedTask]: ...
