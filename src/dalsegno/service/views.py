"""The JSON shapes of INTERFACE.md, shared by the CLI's `--json` and the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dalsegno.engine.resume import ResumePlan
from dalsegno.model.records import EventRecord, ExecutionRecord, TaskRecord


def iso(timestamp: float | None) -> str | None:
    """A UTC timestamp as ISO 8601 (`2026-11-26T23:30:00.123456+00:00`)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def execution_json(
    execution: ExecutionRecord,
    tasks: list[TaskRecord] | None = None,
    actions: list[EventRecord] | None = None,
) -> dict[str, Any]:
    """An execution; with its tasks and the actions people asked for when given."""
    found: dict[str, Any] = {
        "id": execution.id,
        "workflow": execution.workflow,
        "status": execution.status.value,
        "params": execution.params,
        "error": execution.error,
        "created_at": iso(execution.created_at),
        "started_at": iso(execution.started_at),
        "ended_at": iso(execution.ended_at),
        "lock": execution.lock_key,
    }
    if tasks is not None:
        found["tasks"] = [task_json(task) for task in tasks]
    if actions is not None:
        found["actions"] = [action_json(event) for event in actions]
    return found


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
    }
