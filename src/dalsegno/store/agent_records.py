"""The records of the agent queue, and the part of the `Store` protocol that serves it.

An agent task is `sent` when its owner hands it to a queue; an agent claims it (the task
stays `sent`, now held by the agent under a fresh attempt id), reports `started`, and
reports a result that is kept on the attempt until the execution's owner applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dalsegno.model.states import TaskState

# Channels: tasks were sent (or requeued) to a queue; an agent reported a result.
TASKS_CHANNEL = "dalsegno_agent_tasks"
RESULTS_CHANNEL = "dalsegno_agent_results"

OUTCOMES = ("succeeded", "failed", "retry")


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


@dataclass(slots=True)
class AgentLog:
    level: str
    message: str
    created_at: float


@dataclass(slots=True)
class AgentReport:
    """The result of one attempt, as the agent delivered it."""

    outcome: str  # one of OUTCOMES
    result_json: str | None
    error: str | None
    recoverable: bool
    retry_after: float | None
    logs: list[AgentLog] = field(default_factory=list)


@dataclass(slots=True)
class AgentBeat:
    queue: str
    agent: str
    host: str
    pid: int
    concurrency: int
    attempt_ids: list[str]


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

    def attempt_queue(self, attempt_id: str) -> str | None: ...

    def start_agent_attempt(self, attempt_id: str, agent: str) -> str: ...

    def record_agent_result(self, attempt_id: str, agent: str, report: AgentReport) -> str: ...

    def agent_heartbeat(self, beat: AgentBeat) -> tuple[list[str], list[str]]: ...

    def list_agents(self) -> list[AgentRecord]: ...

    def awaited_agent_tasks(
        self, execution_id: str, task_ids: Sequence[int]
    ) -> list[AwaitedTask]: ...
