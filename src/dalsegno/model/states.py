"""Execution and task states, and the only moves between them (docs/design.md section 2).

The transition tables are data: the engine plans with them and the store builds its
guarded updates from them, so a move that is not listed here can never be written.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class ExecutionState(StrEnum):
    """Where an execution stands; `completed` is the success end state."""

    PENDING = "pending"
    QUEUED = "queued"
    STARTED = "started"
    CANCELLING = "cancelling"
    FORCE_CANCELLING = "force_cancelling"
    KILL_CANCELLING = "kill_cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"


class TaskState(StrEnum):
    """Where one task of a graph stands."""

    PENDING = "pending"
    SENT = "sent"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RESCHEDULED = "rescheduled"


_S = TypeVar("_S", ExecutionState, TaskState)

E = ExecutionState
T = TaskState

EXECUTION_TRANSITIONS: dict[ExecutionState, frozenset[ExecutionState]] = {
    E.PENDING: frozenset({E.STARTED, E.CANCELLED, E.FAILED}),
    E.QUEUED: frozenset({E.PENDING, E.CANCELLED}),
    E.STARTED: frozenset(
        {E.COMPLETED, E.FAILED, E.CANCELLING, E.FORCE_CANCELLING, E.KILL_CANCELLING, E.STARTED}
    ),
    E.CANCELLING: frozenset({E.CANCELLED, E.FAILED, E.FORCE_CANCELLING, E.KILL_CANCELLING}),
    E.FORCE_CANCELLING: frozenset({E.CANCELLED, E.KILL_CANCELLING}),
    E.KILL_CANCELLING: frozenset({E.CANCELLED}),
    E.CANCELLED: frozenset({E.PENDING, E.QUEUED, E.STARTED}),
    E.FAILED: frozenset({E.PENDING, E.QUEUED, E.STARTED}),
    E.COMPLETED: frozenset(),
}

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    T.PENDING: frozenset({T.SENT}),
    T.SENT: frozenset({T.STARTED, T.SENT, T.FAILED, T.PENDING}),
    T.STARTED: frozenset({T.SUCCEEDED, T.FAILED, T.RESCHEDULED, T.SENT, T.PENDING}),
    T.RESCHEDULED: frozenset({T.SENT, T.PENDING}),
    T.FAILED: frozenset({T.PENDING}),
    T.SUCCEEDED: frozenset({T.PENDING}),  # only a subgraph's retry or resume resets it
}

EXECUTION_END_STATES = frozenset({E.COMPLETED, E.FAILED, E.CANCELLED})
RESUMABLE_END_STATES = frozenset({E.FAILED, E.CANCELLED})
CANCELLING_STATES = frozenset({E.CANCELLING, E.FORCE_CANCELLING, E.KILL_CANCELLING})
ACTIVE_STATES = frozenset({E.STARTED}) | CANCELLING_STATES
TASK_IN_FLIGHT = frozenset({T.SENT, T.STARTED})
# Executions that hold their lock key: from creation to their end, but for `queued`.
LOCK_HOLDING_STATES = frozenset(ExecutionState) - EXECUTION_END_STATES - {E.QUEUED}
# Executions nobody runs yet: a cancel ends them `cancelled` at once, with no owner.
UNOWNED_CANCEL_SOURCES = frozenset({E.PENDING, E.QUEUED})


class CancelMode(StrEnum):
    """How a cancel stops an execution (docs/design.md section 4), weakest first."""

    CANCEL = "cancel"  # start nothing new, await the running tasks
    FORCE = "force"  # stop now; running operations end alone, their results ignored
    KILL = "kill"  # stop now and kill running operations

    @property
    def target(self) -> ExecutionState:
        """The `*cancelling` state this mode asks for."""
        return _CANCEL_TARGETS[self]

    @property
    def rank(self) -> int:
        """Escalation order: a stronger mode may follow a weaker one, never the reverse."""
        return list(CancelMode).index(self)

    @classmethod
    def of(cls, state: ExecutionState) -> CancelMode | None:
        """The mode a `*cancelling` state carries out; None for any other state."""
        return _CANCEL_MODES.get(state)


_CANCEL_TARGETS = {
    CancelMode.CANCEL: E.CANCELLING,
    CancelMode.FORCE: E.FORCE_CANCELLING,
    CancelMode.KILL: E.KILL_CANCELLING,
}
_CANCEL_MODES = {target: mode for mode, target in _CANCEL_TARGETS.items()}


def execution_sources(target: ExecutionState) -> frozenset[ExecutionState]:
    """The states from which an execution may move to `target`."""
    return _EXECUTION_SOURCES[target]


def task_sources(target: TaskState) -> frozenset[TaskState]:
    """The states from which a task may move to `target`."""
    return _TASK_SOURCES[target]


def task_path_sources(path: tuple[TaskState, ...]) -> frozenset[TaskState]:
    """The states from which a task may walk `path`, one listed move after another.

    A manager-side task is handed to a worker that is free to run it at once, so its
    `sent` and `started` are committed together: the path (SENT, STARTED) from PENDING.
    """
    sources: set[TaskState] = set()
    for state in TaskState:
        current = state
        for step in path:
            if step not in TASK_TRANSITIONS[current]:
                break
            current = step
        else:
            sources.add(state)
    return frozenset(sources)


def owner_end_sources(target: ExecutionState) -> frozenset[ExecutionState]:
    """The states from which the execution's owner may end it in `target`: the listed
    sources that a running owner can see (`started` or a `*cancelling` state)."""
    return _EXECUTION_SOURCES[target] & ACTIVE_STATES


def can_move_execution(source: ExecutionState, target: ExecutionState) -> bool:
    """Whether the table lists source -> target for an execution."""
    return target in EXECUTION_TRANSITIONS[source]


def can_move_task(source: TaskState, target: TaskState) -> bool:
    """Whether the table lists source -> target for a task."""
    return target in TASK_TRANSITIONS[source]


def _invert(table: dict[_S, frozenset[_S]]) -> dict[_S, frozenset[_S]]:
    sources: dict[_S, set[_S]] = {state: set() for state in table}
    for source, targets in table.items():
        for target in targets:
            sources[target].add(source)
    return {state: frozenset(found) for state, found in sources.items()}


_EXECUTION_SOURCES = _invert(EXECUTION_TRANSITIONS)
_TASK_SOURCES = _invert(TASK_TRANSITIONS)
# A manager-side task is handed to a free worker: its `sent` and `started` commit together.
DISPATCH_SOURCES = task_path_sources((T.SENT, T.STARTED))


class TakeUp(StrEnum):
    """How an execution is taken up (docs/design.md, "The lifecycle").

    Stored with a `pending` or `queued` execution so that whoever claims it next knows what
    kind of run it starts, instead of guessing it from what the store holds.
    """

    START = "start"  # a new execution
    RESUME = "resume"  # a person resumed a failed or cancelled execution
    RECOVER = "recover"  # a person resumed a crashed one (its owner gone): as a takeover
    TAKEOVER = "takeover"  # a manager took over an expired or void lease
    FINISH_CANCEL = "finish_cancel"  # the owner of a `*cancelling` execution is gone

    @property
    def resumes(self) -> bool:
        """Whether the workflow function runs again over stored graphs (`ctx.resume`)."""
        return self is not TakeUp.START
