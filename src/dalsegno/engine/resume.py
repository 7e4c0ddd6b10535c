"""Resume: who may resume, and what resume does to each task (docs/design.md section 3).

The same plan serves `--dry-run` (printed) and the resume itself (carried out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dalsegno.engine.lease import lease_is_free
from dalsegno.engine.references import resolve_operation
from dalsegno.model.errors import BadReferenceError, ConflictError
from dalsegno.model.records import ExecutionRecord, TaskChange, TaskRecord
from dalsegno.model.states import ExecutionState, TaskState

E = ExecutionState
S = TaskState
RESETTABLE = frozenset({S.FAILED, S.RESCHEDULED})
RESETTABLE_WITH_OPERATIONS = RESETTABLE | {S.SENT, S.STARTED}


@dataclass(frozen=True, slots=True)
class PlannedTask:
    graph: str
    key: str
    operation: str
    agent: str | None
    status: str
    action: str
    reason: str


@dataclass(slots=True)
class ResumePlan:
    execution_id: str
    workflow: str
    status: str
    reset_operations: bool
    workflow_resumable: bool
    tasks: list[PlannedTask] = field(default_factory=list)
    resets: list[TaskChange] = field(default_factory=list)

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


def plan_resume(
    execution: ExecutionRecord,
    tasks: list[TaskRecord],
    reset_operations: bool,
    workflow_resumable: bool,
    *,
    detail: bool = True,
) -> ResumePlan:
    """What a manual resume does to each task, and the resets it writes first.

    Without `detail` only the resets are worked out (a resume of a big graph needs
    nothing else, and the plan of a task that is kept or simply pending costs time).
    """
    plan = ResumePlan(
        execution_id=execution.id,
        workflow=execution.workflow,
        status=execution.status.value,
        reset_operations=reset_operations,
        workflow_resumable=workflow_resumable,
    )
    resettable = RESETTABLE_WITH_OPERATIONS if reset_operations else RESETTABLE
    for task in tasks:
        if detail:
            action, reason = _action(task, reset_operations)
            plan.tasks.append(
                PlannedTask(
                    task.graph,
                    task.key,
                    task.operation,
                    task.agent,
                    task.status.value,
                    action,
                    reason,
                )
            )
        if task.status in resettable:
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
    if not workflow_resumable:
        plan.resets.clear()
        plan.reset_keys.clear()
    return plan


def _action(task: TaskRecord, reset_operations: bool) -> tuple[str, str]:  # noqa: PLR0911 - a table
    status = task.status
    if status is S.SUCCEEDED:
        return "kept", "succeeded: never run again"
    if status is S.PENDING:
        return "run", "pending: runs when its dependencies succeeded"
    if status in (S.FAILED, S.RESCHEDULED):
        return "reset", f"{status}: reset to pending with retries 0, then run"
    if reset_operations:
        return "reset", f"{status}: reset to pending (--reset-operations), then run"
    if task.agent is not None:
        return "awaited", f"{status} on agent queue '{task.agent}': its result is awaited"
    if status is S.SENT:
        return "re-run", "sent but never started: submitted again"
    try:
        _, definition = resolve_operation(task.operation)
    except BadReferenceError as exc:
        return "fail", f"started, and its operation does not import: {exc}"
    if definition.resumable:
        return "re-run", "started and interrupted; the operation is resumable: run again"
    return "fail", (f"Cannot resume - operation not resumable: {task.key} ({task.operation})")
