"""Resume: who may resume, and the plan of what a take-up does to each task
(docs/design.md, "Resume: the rules").

The same plan serves `--dry-run` (printed) and the resume itself (its resets written);
each task's line comes from `dalsegno.engine.fates.fate`, the one home of the rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from dalsegno.engine.fates import (
    SUB_FAILED,
    SUB_PENDING,
    Action,
    Fate,
    Resumability,
    SubgraphFound,
    fate,
    operation_resumability,
    resets,
    simulated,
    subgraph_failures,
    subgraph_fate,
    subgraph_resets,
    where_it_runs,
)
from dalsegno.engine.lease import lease_is_free
from dalsegno.model.errors import ConflictError
from dalsegno.model.records import (
    ExecutionRecord,
    StoredGraph,
    SubgraphChange,
    SubgraphRecord,
    TaskChange,
    TaskRecord,
)
from dalsegno.model.states import RESUMABLE_END_STATES, ExecutionState, TakeUp, TaskState

E = ExecutionState
S = TaskState


@dataclass(frozen=True, slots=True)
class PlannedTask:
    graph: str
    key: str
    operation: str
    agent: str | None
    status: str
    action: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlannedSubgraph:
    graph: str
    key: str
    parent: str | None
    status: str
    retries: int
    max_retries: int
    on_failure: str
    action: str
    reason: str


@dataclass(slots=True)
class ResumePlan:
    execution_id: str
    workflow: str
    status: str
    reset_operations: bool
    workflow_resumable: bool
    take_up: str = TakeUp.RESUME.value
    lock_key: str | None = None
    lock_holder: str | None = None  # the execution it would wait for in `queued`
    dry_run: bool = False  # a dry-run execution: its resume is simulated too
    tasks: list[PlannedTask] = field(default_factory=list)
    resets: list[TaskChange] = field(default_factory=list)
    subgraphs: list[PlannedSubgraph] = field(default_factory=list)
    subgraph_resets: list[SubgraphChange] = field(default_factory=list)

    reset_keys: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for task in self.tasks:
            found[task.action] = found.get(task.action, 0) + 1
        return found


def check_resumable(execution: ExecutionRecord, now: float | None = None) -> None:
    """Refuse a resume the execution's state does not allow; say why in one line."""
    status = execution.status
    if status in (E.FAILED, E.CANCELLED):
        return
    prefix = f"Cannot resume - execution {execution.id}"
    if status is E.COMPLETED:
        msg = f"{prefix} is completed"
        raise ConflictError(msg)
    if status in (E.PENDING, E.QUEUED):
        msg = f"{prefix} is {status}: it has not run yet and waits for a manager"
        raise ConflictError(msg)
    if not lease_is_free(execution.lease_owner, execution.lease_expires_at, now):
        owner = execution.lease_owner
        holder = f"{owner.host} pid {owner.pid}" if owner else "another process"
        expires = execution.lease_expires_at or 0.0
        msg = (
            f"{prefix} is {status} and still running: its lease is held by {holder} "
            f"for {max(0.0, expires - time.time()):.1f}s more"
        )
        raise ConflictError(msg)


def manual_take_up(execution: ExecutionRecord) -> TakeUp:
    """The kind of take-up of a person's resume: of a failed or cancelled execution, or
    of a crashed one (its owner gone), which is the takeover a manager would do."""
    return TakeUp.RESUME if execution.status in RESUMABLE_END_STATES else TakeUp.RECOVER


def plan_resume(
    execution: ExecutionRecord,
    tasks: list[TaskRecord],
    reset_operations: bool,
    workflow_resumable: bool,
    *,
    take_up: TakeUp | None = None,
    detail: bool = True,
    resumable: Resumability = operation_resumability,
    graphs: Iterable[StoredGraph] = (),
    bound: Resumability | None = None,
) -> ResumePlan:
    """What a take-up does to each task (`dalsegno.engine.fates.fate`), and the resets it
    writes first. A workflow that is not resumable fails at once: nothing runs, nothing
    is reset, and the plan lists no task. `bound`: the `Resumability` of lifecycle tasks
    (a manager's allow-list's, `served_resumability`), else `resumable`.

    Without `detail` only the resets are worked out (a resume of a big graph needs
    nothing else, and the plan of a task that is kept or simply pending costs time).
    """
    kind = take_up if take_up is not None else manual_take_up(execution)
    if execution.dry_run:  # simulated in its owner: nothing ran, nothing is on an agent
        resumable = bound = simulated
    plan = ResumePlan(
        execution_id=execution.id,
        workflow=execution.workflow,
        status=execution.status.value,
        reset_operations=reset_operations,
        workflow_resumable=workflow_resumable,
        take_up=kind.value,
        dry_run=execution.dry_run,
    )
    if not workflow_resumable:
        return plan
    graphs = list(graphs)
    in_reset = _plan_subgraphs(plan, graphs, kind, detail)
    for task in tasks:
        whole = bool(in_reset) and (task.graph, task.subgraph) in in_reset
        if detail:
            found = fate(
                task.status,
                task.key,
                task.operation,
                where_it_runs(task.agent, execution.dry_run),
                kind,
                reset_operations,
                resumable if bound is None or task.instance is None else bound,
                in_reset_subgraph=whole,
            )
            plan.tasks.append(
                PlannedTask(
                    task.graph,
                    task.key,
                    task.operation,
                    task.agent,
                    task.status.value,
                    found.action.value,
                    found.reason,
                )
            )
        if (whole and task.status is not S.PENDING) or resets(task.status, kind, reset_operations):
            plan.resets.append(
                TaskChange(
                    task_id=task.id,
                    expected=task.status,
                    status=S.PENDING,
                    retries=0,
                    attempts=task.attempts,
                    error=task.error,
                    result_json=None,
                    next_run_at=None,
                    started_at=task.started_at,
                    ended_at=task.ended_at,
                )
            )
            name = task.key if task.graph == "main" else f"{task.graph}/{task.key}"
            plan.reset_keys.append(name)
    if detail:
        for graph in graphs:
            if graph.subgraphs:
                _plan_failures(plan, graph)
    return plan


def _plan_failures(plan: ResumePlan, graph: StoredGraph) -> None:
    """The subgraphs that fail as the take-up starts (`subgraph_failures`), and what that
    does to the tasks inside: reset and run again by a retry, or held by a failure."""
    planned = {
        sub.key: index for index, sub in enumerate(plan.subgraphs) if sub.graph == graph.name
    }
    found: dict[str, SubgraphFound] = {}
    for sub in graph.subgraphs:
        reset = plan.subgraphs[planned[sub.key]].action == Action.RESET.value
        found[sub.key] = SubgraphFound(
            sub.parent,
            SUB_PENDING if reset else sub.status,
            0 if reset else sub.retries,
            sub.max_retries,
            sub.on_failure,
        )
    stored = {task.key: task for task in graph.tasks}
    lines = {line.key: index for index, line in enumerate(plan.tasks) if line.graph == graph.name}
    failing: dict[str, str] = {}
    for key, index in lines.items():
        task = stored[key]
        if (
            task.subgraph is not None
            and task.on_failure != "ignore"
            and plan.tasks[index].action in (Action.FAIL.value, Action.FAILED.value)
        ):
            failing.setdefault(task.subgraph, f"task '{key}'")
    fates, status = subgraph_failures(found, failing)
    for key, changed in fates.items():
        index = planned[key]
        plan.subgraphs[index] = replace(
            plan.subgraphs[index], action=changed.action.value, reason=changed.reason
        )
    retried = {key for key, changed in fates.items() if changed.action is Action.RETRY}
    failed = {key for key, state in status.items() if state == SUB_FAILED}
    for key, index in lines.items():
        chain = _chain(stored[key].subgraph, graph.subgraphs)
        line = plan.tasks[index]
        again = next((sub for sub in chain if sub in retried), None)
        if again is not None:
            first = "fails at the take-up, then " if line.action == Action.FAIL.value else ""
            reason = f"{line.status}: {first}its subgraph '{again}' retries: reset, then run"
            plan.tasks[index] = replace(line, action=Action.RESET.value, reason=reason)
            continue
        held = next((sub for sub in chain if sub in failed), None)
        if held is not None and line.action in (
            Action.RUN.value,
            Action.RERUN.value,
            Action.RESET.value,
        ):
            was = " (reset to pending first)" if line.action == Action.RESET.value else ""
            reason = f"{line.status}: its subgraph '{held}' failed: it does not start{was}"
            plan.tasks[index] = replace(line, action=Action.HELD.value, reason=reason)


def _chain(key: str | None, subgraphs: list[SubgraphRecord]) -> list[str]:
    """`key` and the subgraphs it is nested in, innermost first."""
    parents = {sub.key: sub.parent for sub in subgraphs}
    found = []
    while key is not None:
        found.append(key)
        key = parents[key]
    return found


def _plan_subgraphs(
    plan: ResumePlan, graphs: Iterable[StoredGraph], kind: TakeUp, detail: bool
) -> set[tuple[str, str | None]]:
    """Each subgraph's fate (`dalsegno.engine.fates.subgraph_fate`) and the resets it
    writes; returns the (graph, subgraph) whose tasks are all reset with them."""
    whole: set[tuple[str, str | None]] = set()
    for graph in graphs:
        if not graph.subgraphs:
            continue
        by_key = {sub.key: sub for sub in graph.subgraphs}

        reset_whole = {
            sub.key
            for sub in graph.subgraphs
            if sub.status == SUB_FAILED and subgraph_resets(sub.status, kind)
        }
        for sub in graph.subgraphs:
            found = subgraph_fate(sub.status, sub.retries, sub.max_retries, sub.on_failure, kind)
            outer = _first_in(sub.key, reset_whole, by_key)
            within = outer is not None
            if within:
                whole.add((graph.name, sub.key))
                if not found.resets:
                    found = Fate(Action.RESET, f"inside '{outer}': reset with it")
            if detail:
                plan.subgraphs.append(
                    PlannedSubgraph(
                        graph.name,
                        sub.key,
                        sub.parent,
                        sub.status,
                        sub.retries,
                        sub.max_retries,
                        sub.on_failure,
                        found.action.value,
                        found.reason,
                    )
                )
            changed = sub.status != SUB_PENDING or sub.retries or sub.next_run_at is not None
            if (within or found.resets) and changed:
                plan.subgraph_resets.append(
                    SubgraphChange(graph.id, sub.key, sub.status, SUB_PENDING, 0, None, None)
                )
    return whole


def _first_in(key: str | None, keys: set[str], by_key: dict[str, SubgraphRecord]) -> str | None:
    """The first of `keys` among `key` and the subgraphs it is nested in."""
    while key is not None:
        if key in keys:
            return key
        key = by_key[key].parent
    return None
