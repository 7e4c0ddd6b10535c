"""What a person looking at executions asks for (the web UI), beside the CLI's reads:
a page of executions with their progress, an execution's graphs, one task's attempts and
log lines, and which actions an execution's state allows now.

A mixin of `ExecutionService`, so the UI calls the one service the CLI and REST API call.
"""

from __future__ import annotations

from dataclasses import dataclass

from dalsegno.engine.resume import check_resumable
from dalsegno.engine.runner import EngineConfig
from dalsegno.model.errors import ConflictError, NotFoundError, RefusedError
from dalsegno.model.records import (
    AttemptRecord,
    EventRecord,
    ExecutionRecord,
    StoredGraph,
    SubgraphRecord,
    TaskRecord,
)
from dalsegno.model.states import (
    EXECUTION_END_STATES,
    CancelMode,
    ExecutionState,
    can_move_execution,
)
from dalsegno.service.pages import PagedReads
from dalsegno.service.workflows import AllowedWorkflow, AllowedWorkflows
from dalsegno.store.agent_records import AgentRecord
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


@dataclass(frozen=True, slots=True)
class AgentsView:
    """The agents page: every agent, the queues with their waiting and held tasks, and
    how long an agent may stay silent before its attempts are lost."""

    agents: list[AgentRecord]
    queues: dict[str, dict[str, int]]
    timeout: float


class ExecutionReads(PagedReads):
    """The UI's and the CLI's reads; `store`, `config` and `find` are
    `ExecutionService`'s."""

    store: Store
    config: EngineConfig

    def find(self, execution_id: str) -> ExecutionRecord:
        raise NotImplementedError

    def task_by_key(
        self, execution_id: str, task: str, graph: str | None = None, log_limit: int = 500
    ) -> TaskDetail:
        """One task of the execution by its key (in `graph` when given; a key that is in
        several graphs needs it), else by its id; with its attempts and last events."""
        execution = self.find(execution_id)
        found = self.store.find_tasks_by_key(execution.id, task, graph)
        if len(found) > 1:
            names = ", ".join(sorted(t.graph for t in found))
            msg = f"task key {task!r} is in several graphs ({names}): name one with its graph"
            raise RefusedError(msg)
        if not found and graph is None and task.isascii() and task.isdigit() and len(task) < 19:
            by_id = self.store.get_task(execution.id, int(task))
            found = [by_id] if by_id is not None else []
        if not found:
            where = f" in graph {graph!r}" if graph is not None else ""
            msg = f"unknown task {task!r}{where} of execution {execution.id}"
            raise NotFoundError(msg)
        return self.task_detail(execution.id, found[0].id, log_limit)

    def agents_overview(self) -> AgentsView:
        """The agents and their queues, as the agents page shows them."""
        from dalsegno.engine.agents import agent_timeout

        return AgentsView(
            self.store.list_agents(), self.store.agent_queues(), agent_timeout(self.config)
        )

    def overview(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        search: str | None = None,
    ) -> list[ExecutionSummary]:
        """The newest `limit` executions (of one state, of one workflow, whose id starts
        with `search` or whose workflow contains it) with their progress."""
        from dalsegno.service.executions import parse_status

        if not 1 <= limit <= MAX_PAGE:
            msg = f"limit must be between 1 and {MAX_PAGE}, not {limit}"
            raise RefusedError(msg)
        found = self.store.page_executions(
            statuses=[parse_status(status)] if status else [],
            workflow=workflow or None,
            search=(search or "").strip() or None,
            limit=limit,
        )
        progress = self.store.task_progress([execution.id for execution in found])
        return [
            ExecutionSummary(execution, *progress.get(execution.id, (0, 0))) for execution in found
        ]

    def subgraphs(self, execution_id: str) -> list[tuple[str, SubgraphRecord]]:
        """The execution's subgraphs with their retry state, graph by graph."""
        return self.store.list_subgraphs(self.find(execution_id).id)

    def actions(self, execution_id: str) -> list[EventRecord]:
        """Who asked for what on the execution (start, resume, cancel), oldest first."""
        return self.store.list_actions(self.find(execution_id).id)

    def allowed_workflows(self) -> list[AllowedWorkflow] | None:
        """The workflows this manager serves (its `--workflows`), or None when it runs any
        it can import (the CLI on the store)."""
        source = self.config.workflows
        return source.workflows if isinstance(source, AllowedWorkflows) else None

    def served_operations(self) -> AllowedWorkflows | None:
        """The allow-list a blueprint's operations must be in on this manager, or None when
        any may run (the CLI on the store)."""
        source = self.config.workflows
        return source if isinstance(source, AllowedWorkflows) else None

    def workflows(self) -> list[str]:
        """Every workflow reference some execution ran."""
        return self.store.list_workflows()

    def graphs(self, execution_id: str) -> tuple[ExecutionRecord, dict[str, StoredGraph]]:
        """The execution and its graphs: tasks and edges (task id, id it depends on), the
        tasks without their arguments and results (`Store.load_graph_outlines`)."""
        execution = self.find(execution_id)
        return execution, self.store.load_graph_outlines(execution.id)

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
