"""The records dalsegno reads and writes: executions, tasks, graphs, attempts, events, and
the guarded changes an owner commits.

Plain data, no I/O: the engine plans with these, and the store (`dalsegno.store`) turns
them into rows. Times are UTC seconds since the epoch (floats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dalsegno.model.states import ExecutionState, TaskState


@dataclass(frozen=True, slots=True)
class LeaseOwner:
    """Who holds a lease: a process on a host. `proc_start` tells a reused pid apart."""

    host: str
    pid: int
    proc_start: str


@dataclass(slots=True)
class ExecutionRecord:
    id: str
    workflow: str
    status: ExecutionState
    params: dict[str, Any]
    error: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    lease_owner: LeaseOwner | None
    lease_expires_at: float | None
    lease_token: int
    lock_key: str | None = None
    params_omitted: bool = False  # a list view left out params over `LIST_PARAMS`
    runs: int = 0  # how many times it was taken up: its start, each resume, each takeover
    first_started_at: float | None = None  # its duration runs from here to `ended_at`
    take_up: str | None = None  # `TakeUp` of the run it waits for, while pending or queued
    dry_run: bool = False  # its tasks are simulated: no operation is ever called
    task_retries: int | None = None  # its tasks' retries when they and their operation set none
    task_retry_interval: float | None = None  # and their retry interval
    deployment_id: str | None = None  # the deployment it runs against (`ctx.deployment`)


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """What an execution is started with besides its params, stored with it so that every
    take-up (a resume, a takeover) runs it the same way (docs/design.md, "Retry settings")."""

    dry_run: bool = False
    task_retries: int | None = None
    task_retry_interval: float | None = None
    deployment_id: str | None = None  # the deployment it runs against (issue 16)


@dataclass(slots=True)
class TaskRecord:
    """A stored task. Its arguments and result stay JSON text until someone reads them."""

    id: int
    execution_id: str
    graph: str
    key: str
    operation: str
    agent: str | None
    kwargs_json: str
    max_retries: int
    retry_interval: float
    timeout: float | None
    status: TaskState
    retries: int
    error: str | None
    result_json: str | None
    attempts: int
    next_run_at: float | None
    started_at: float | None
    ended_at: float | None
    subgraph: str | None = None  # the key of the innermost subgraph it belongs to
    on_failure: str | None = None  # "ignore": its failure lets its dependents run
    instance: str | None = None  # a lifecycle task's `InstanceBinding`, as JSON

    @property
    def ignored(self) -> bool:
        """A failure its policy tolerates (`on_failure="ignore"`)."""
        return self.on_failure == "ignore" and self.status is TaskState.FAILED

    @property
    def kwargs(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.kwargs_json)
        return decoded

    @property
    def result(self) -> Any:
        return None if self.result_json is None else json.loads(self.result_json)


@dataclass(slots=True)
class SubgraphRecord:
    """A group of tasks of a graph that fails or retries as a unit (docs/design.md,
    "Subgraphs"). `status`: `pending` (runs, or ran), `retrying` (waits until
    `next_run_at` to run again), `failed` (out of retries)."""

    key: str
    parent: str | None  # the subgraph it is nested in; None: the graph itself
    max_retries: int  # -1: retries forever
    retry_interval: float
    on_failure: str = "fail"
    status: str = "pending"
    retries: int = 0
    next_run_at: float | None = None
    error: str | None = None

    @property
    def ignored(self) -> bool:
        return self.on_failure == "ignore" and self.status == "failed"


@dataclass(slots=True)
class SubgraphChange:
    """A guarded move of a subgraph: applied only while it is still in `expected`."""

    graph_id: int
    key: str
    expected: str
    status: str
    retries: int
    next_run_at: float | None
    error: str | None


@dataclass(slots=True)
class StoredGraph:
    id: int
    name: str
    tasks: list[TaskRecord]
    edges: list[tuple[int, int]]  # (task id, id of the task it depends on)
    subgraphs: list[SubgraphRecord] = field(default_factory=list)
    # the edges with a subgraph on a side, by key: (node, the node it depends on)
    node_edges: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class EventRecord:
    id: str
    execution_id: str
    graph: str | None
    task_key: str | None
    type: str
    level: str
    message: str
    created_at: float
    actor: str | None = None  # who asked for it (REST, web UI, CLI); None: the engine


def lock_waiting(lock_key: str, holder: str, at: float) -> NewEvent:
    """The event of an execution that waits in `queued` for the execution holding its key."""
    return NewEvent(
        "lock_waiting", f"Queued: lock '{lock_key}' is held by execution {holder}", created_at=at
    )


@dataclass(slots=True)
class AttemptRecord:
    task_id: int
    number: int
    outcome: str
    worker: str
    started_at: float
    ended_at: float | None
    error: str | None


@dataclass(slots=True)
class NewTask:
    """A task about to be stored with its graph."""

    key: str
    operation: str
    agent: str | None
    kwargs: dict[str, Any]
    kwargs_json: str
    max_retries: int
    retry_interval: float
    timeout: float | None
    subgraph: str | None = None
    on_failure: str | None = None
    instance: str | None = None  # a lifecycle task's `InstanceBinding`, as JSON


@dataclass(slots=True)
class NewEvent:
    type: str
    message: str
    graph: str | None = None
    task_key: str | None = None
    level: str = "info"
    created_at: float = 0.0
    actor: str | None = None  # who asked for it (REST, web UI, CLI); None: the engine


@dataclass(slots=True)
class TaskChange:
    """One guarded task update: applied only while the task is still in `expected`.

    Every column the engine owns is written from the engine's copy of the task, so one
    statement shape serves the whole batch.
    """

    task_id: int
    expected: TaskState
    status: TaskState
    retries: int
    attempts: int
    error: str | None
    result_json: str | None
    next_run_at: float | None
    started_at: float | None
    ended_at: float | None
    # an agent task's `ctx.resume` for its next claim (`tasks.resume`); None keeps it
    resume: bool | None = None


@dataclass(slots=True)
class AttemptStart:
    task_id: int
    number: int
    worker: str
    started_at: float


@dataclass(slots=True)
class AttemptEnd:
    task_id: int
    number: int
    outcome: str
    ended_at: float
    error: str | None


@dataclass(slots=True)
class ExecutionChange:
    """A guarded move of the execution by its owner."""

    expected: frozenset[ExecutionState]
    status: ExecutionState
    error: str | None = None
    release_lease: bool = False


@dataclass(slots=True)
class InstanceChange:
    """A change of one node instance written with a lifecycle task's start or success:
    its new state (None: kept) and the runtime properties the operation set or removed
    (applied key by key to the stored ones, so two tasks that change different keys of one
    instance both keep their change)."""

    instance_id: str
    state: str | None = None
    set_properties: dict[str, Any] = field(default_factory=dict)
    unset_properties: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    """State writes that happen together, committed in one transaction (group commit).

    `starts` (tasks handed to an executor, with their attempts and events) are written only
    while the execution is `started`: after a cancel committed by another process, no new
    task starts. The state `apply` returns tells which: `started` means the starts were
    written, anything else means they were not.
    """

    execution_id: str
    lease_token: int
    lease_expires_at: float
    tasks: list[TaskChange] = field(default_factory=list)
    attempt_ends: list[AttemptEnd] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    starts: list[TaskChange] = field(default_factory=list)
    attempt_starts: list[AttemptStart] = field(default_factory=list)
    start_events: list[NewEvent] = field(default_factory=list)
    execution: ExecutionChange | None = None
    subgraphs: list[SubgraphChange] = field(default_factory=list)
    # node instances: the changes a lifecycle task's success makes (with `tasks`), and the
    # "-ing" state its attempt's start writes (with `starts`, under the same condition)
    instances: list[InstanceChange] = field(default_factory=list)
    instance_starts: list[InstanceChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.tasks
            or self.subgraphs
            or self.instances
            or self.attempt_ends
            or self.events
            or self.starts
            or self.attempt_starts
            or self.start_events
            or self.execution
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """Taking an execution's lease: allowed only from the state (and token) last seen.

    With no owner, the execution is handed to whichever manager claims it next (a resume
    asked through the REST API moves it to `pending` this way).
    """

    execution_id: str
    expected_status: ExecutionState
    expected_token: int
    owner: LeaseOwner | None
    lease_expires_at: float | None
    status: ExecutionState = ExecutionState.STARTED
    # the kind of take-up (`TakeUp`) recorded with the execution, for a hand-over
    take_up: str | None = None
    # leaving an end state, the execution waits in `queued` while another holds its lock key
    honour_lock: bool = False
