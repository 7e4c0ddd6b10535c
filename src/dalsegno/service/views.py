"""The JSON shapes of docs/interface.md, shared by the CLI's `--json` and the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dalsegno.engine.resume import ResumePlan
from dalsegno.model.records import EventRecord, ExecutionRecord, SubgraphRecord, TaskRecord
from dalsegno.model.states import TaskState

if TYPE_CHECKING:
    from dalsegno.service.housekeeping import PurgeReport
    from dalsegno.service.reads import TaskDetail
    from dalsegno.store.housekeeping import Removed


def iso(timestamp: float | None) -> str | None:
    """A UTC timestamp as ISO 8601 (`2026-11-26T23:30:00.123456+00:00`)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def execution_json(
    execution: ExecutionRecord,
    tasks: list[TaskRecord] | None = None,
    actions: list[EventRecord] | None = None,
    subgraphs: list[tuple[str, SubgraphRecord]] | None = None,
) -> dict[str, Any]:
    """An execution; with its tasks, the actions people asked for and its subgraphs when
    given."""
    found: dict[str, Any] = {
        "id": execution.id,
        "workflow": execution.workflow,
        "status": execution.status.value,
        "params": None if execution.params_omitted else execution.params,
        "error": execution.error,
        "created_at": iso(execution.created_at),
        "started_at": iso(execution.started_at),
        "ended_at": iso(execution.ended_at),
        "lock": execution.lock_key,
        "runs": execution.runs,
        "first_started_at": iso(execution.first_started_at),
        "dry_run": execution.dry_run,
        "task_retries": execution.task_retries,
        "task_retry_interval": execution.task_retry_interval,
        "deployment_id": execution.deployment_id,
    }
    if tasks is not None:
        found["tasks"] = [task_json(task) for task in tasks]
    if actions is not None:
        found["actions"] = [action_json(event) for event in actions]
    if subgraphs is not None:
        found["subgraphs"] = [subgraph_json(graph, sub) for graph, sub in subgraphs]
    return found


def subgraph_json(graph: str, sub: SubgraphRecord) -> dict[str, Any]:
    """A subgraph with its retry state (`max_retries` -1: retries forever)."""
    return {
        "graph": graph,
        "key": sub.key,
        "parent": sub.parent,
        "status": sub.status,
        "retries": sub.retries,
        "max_retries": sub.max_retries,
        "retry_interval": sub.retry_interval,
        "on_failure": sub.on_failure,
        "ignored": sub.ignored,
        "retry_at": iso(sub.next_run_at) if sub.status == "retrying" else None,
        "error": sub.error,
    }


def action_json(event: EventRecord) -> dict[str, Any]:
    """Who asked for what: an event that records its actor."""
    return {
        "type": event.type,
        "actor": event.actor,
        "message": event.message,
        "created_at": iso(event.created_at),
    }


def task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": str(task.id),
        "graph": task.graph,
        "key": task.key,
        "operation": task.operation,
        "agent": task.agent,
        "status": task.status.value,
        "retries": task.retries,
        "error": task.error,
        "result": task.result,
        "subgraph": task.subgraph,
        "ignored": task.ignored,
    }


def task_summary_json(task: TaskRecord) -> dict[str, Any]:
    """A task in a list: what `task_json` has but its result (list views carry no params
    or results), with its attempts and times."""
    return {
        "id": str(task.id),
        "graph": task.graph,
        "key": task.key,
        "operation": task.operation,
        "agent": task.agent,
        "status": task.status.value,
        "retries": task.retries,
        "error": task.error,
        "attempt_count": task.attempts,
        "started_at": iso(task.started_at),
        "ended_at": iso(task.ended_at),
        "retry_at": iso(task.next_run_at) if task.status is TaskState.RESCHEDULED else None,
        "subgraph": task.subgraph,
        "ignored": task.ignored,
    }


def task_detail_json(detail: TaskDetail) -> dict[str, Any]:
    """One task with its arguments, result, every attempt (numbered from 1: where it ran,
    when, its outcome and error with the traceback) and its last events and log lines."""
    task = detail.task
    last = len(detail.attempts) - 1
    return {
        **task_summary_json(task),
        "execution_id": task.execution_id,
        "max_retries": task.max_retries,
        "timeout": task.timeout,
        "kwargs": task.kwargs,
        "result": task.result,
        "attempts": [
            {
                "number": attempt.number + 1,
                "worker": attempt.worker,
                "started_at": iso(attempt.started_at),
                "ended_at": iso(attempt.ended_at),
                "outcome": attempt.outcome,
                "error": attempt.error,
                "result": task.result
                if index == last and task.status is TaskState.SUCCEEDED
                else None,
            }
            for index, attempt in enumerate(detail.attempts)
        ],
        "events": [event_json(event) for event in detail.events],
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "execution_id": event.execution_id,
        "graph": event.graph,
        "task_key": event.task_key,
        "type": event.type,
        "level": event.level,
        "message": event.message,
        "created_at": iso(event.created_at),
        "actor": event.actor,
    }


def plan_json(plan: ResumePlan) -> dict[str, Any]:
    return {
        "execution_id": plan.execution_id,
        "workflow": plan.workflow,
        "status": plan.status,
        "reset_operations": plan.reset_operations,
        "workflow_resumable": plan.workflow_resumable,
        "take_up": plan.take_up,
        "lock_key": plan.lock_key,
        "lock_holder": plan.lock_holder,
        "dry_run": plan.dry_run,
        "tasks": [
            {
                "graph": task.graph,
                "key": task.key,
                "operation": task.operation,
                "agent": task.agent,
                "status": task.status,
                "action": task.action,
                "reason": task.reason,
            }
            for task in plan.tasks
        ],
        "subgraphs": [
            {
                "graph": sub.graph,
                "key": sub.key,
                "parent": sub.parent,
                "status": sub.status,
                "retries": sub.retries,
                "max_retries": sub.max_retries,
                "on_failure": sub.on_failure,
                "action": sub.action,
                "reason": sub.reason,
            }
            for sub in plan.subgraphs
        ],
    }


def removed_json(removed: Removed) -> dict[str, int]:
    """What a delete removed."""
    return {"executions": removed.executions, "tasks": removed.tasks, "events": removed.events}


def purge_json(report: PurgeReport) -> dict[str, Any]:
    """What a purge removed (or would, in a dry run), and the first ids."""
    return {
        "dry_run": report.dry_run,
        **removed_json(report.removed),
        "skipped": report.skipped,
        "ids": report.ids,
    }
