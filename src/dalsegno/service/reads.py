"""What a person looking at executions asks for (the web UI), beside the CLI's reads:
a page of executions with their progress, an execution's graphs, one task's attempts and
log lines, and which actions an execution's state allows now.

A mixin of `ExecutionService`, so the UI calls the one service the CLI and REST API call.
"""

from __future__ import annotations

from dataclasses import dataclass

from dalsegno.engine.resume import check_resumable
from dalsegno.model.errors import ConflictError, NotFoundError, RefusedError
from dalsegno.model.records import (
    AttemptRecord,
    EventRecord,
    ExecutionRecord,
    StoredGraph,
    TaskRecord,
)
from dalsegno.model.states import (
    EXECUTION_END_STATES,
    CancelMode,
    ExecutionState,
    can_move_execution,
)
from dalsegno.store.base import Store

E = ExecutionState
MAX_PAGE = 1000
# The cancel modes, in the order a person escalates them, and the state each one asks for.
CANCEL_MODES = tuple((mode.value, mode.target) for mode in CancelMode)


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """An execution and its progress: `done` of its `total` tasks succeeded."""

    execution: ExecutionRecord
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """One task with its attempts and its events and log lines."""

    task: TaskRecord
    attempts: list[AttemptRecord]
    events: list[EventRecord]


class ExecutionReads:
    """The UI's reads; `store` and `find` are `ExecutionService`'s."""

    store: Store

    def find(self, execution_id: str) -> ExecutionRecord:
        raise NotImplementedError

    def overview(
        self, status: str | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[ExecutionSummary]:
        """The newest `limit` executions (of one state, of one workflow) with their progress."""
        from dalsegno.service.executions import parse_status

        if not 1 <= limit <= MAX_PAGE:
            msg = f"limit must be between 1 and {MAX_PAGE}, not {limit}"
            raise RefusedError(msg)
        state = parse_status(status) if status else None
        found = self.store.list_recent_executions(state, workflow or None, limit)
        progress = self.store.task_progress([execution.id for execution in found])
        return [
            ExecutionSummary(execution, *progress.get(execution.id, (0, 0))) for execution in found
        ]

    def actions(self, execution_id: str) -> list[EventRecord]:
        """Who asked for what on the execution (start, resume, cancel), oldest first."""
        return self.store.list_actions(self.find(execution_id).id)

    def workflows(self) -> list[str]:
        """Every workflow reference some execution ran."""
        return self.store.list_workflows()

    def graphs(self, execution_id: str) -> tuple[ExecutionRecord, dict[str, StoredGraph]]:
        """The execution and its graphs: tasks and edges (task id, id it depends on)."""
        execution = self.find(execution_id)
        return execution, self.store.load_graphs(execution.id)

    def task_detail(self, execution_id: str, task_id: int, log_limit: int = 500) -> TaskDetail:
        """One task of the execution with its attempts and its last `log_limit` events."""
        execution = self.find(execution_id)
        task = self.store.get_task(execution.id, task_id)
        if task is None:
            msg = f"unknown task {task_id} of execution {execution.id}"
            raise NotFoundError(msg)
        return TaskDetail(
            task,
            self.store.list_task_attempts(task.id),
            self.store.list_task_events(execution.id, task.graph, task.key, log_limit),
        )

    def last_events(self, execution_id: str, limit: int = 200) -> list[EventRecord]:
        """The execution's last `limit` events and log lines, oldest first."""
        execution = self.find(execution_id)
        return self.store.list_last_events(execution.id, limit)

    def allowed_actions(self, execution: ExecutionRecord) -> list[str]:
        """What may be asked of the execution now: `resume`, `cancel`, `force`, `kill`.

        The same rules `resume` and `cancel` apply, so a button shown is one that works.
        """
        actions = []
        try:
            check_resumable(execution)
            actions.append("resume")
        except ConflictError:
            pass
        status = execution.status
        if status in (E.PENDING, E.QUEUED):
            actions.append("cancel")
        elif status not in EXECUTION_END_STATES:
            actions.extend(
                mode for mode, target in CANCEL_MODES if can_move_execution(status, target)
            )
        return actions


__all__ = [
    "AttemptRecord",
    "EventRecord",
    "ExecutionReads",
    "ExecutionRecord",
    "ExecutionSummary",
    "StoredGraph",
    "TaskDetail",
    "TaskRecord",
]
