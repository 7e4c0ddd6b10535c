"""The words of the event log, in the style operators know from Cloudify."""

from __future__ import annotations

import time

from dalsegno.model.records import ExecutionSettings, NewEvent


def _now() -> float:
    return time.time()


def workflow_started(workflow: str, settings: ExecutionSettings | None = None) -> NewEvent:
    notes = []
    if settings is not None and settings.dry_run:
        notes.append("dry run: no operation is called")
    if settings is not None and settings.task_retries is not None:
        forever = settings.task_retries == -1
        notes.append(
            "task retries: forever" if forever else f"task retries: {settings.task_retries}"
        )
    if settings is not None and settings.task_retry_interval is not None:
        notes.append(f"task retry interval: {settings.task_retry_interval:g}s")
    if settings is not None and settings.deployment_id is not None:
        notes.append(f"deployment: {settings.deployment_id}")
    detail = f" ({'; '.join(notes)})" if notes else ""
    return NewEvent(
        "workflow_started", f"Starting '{workflow}' workflow execution{detail}", created_at=_now()
    )


def workflow_resumed(
    workflow: str, reset: list[str], taken_over_by: str = "", cause: str = ""
) -> NewEvent:
    detail = f" (reset: {', '.join(reset)})" if reset else ""
    if taken_over_by:
        detail = f" (taken over by {taken_over_by}: {cause or 'its previous owner stopped'})"
    return NewEvent(
        "workflow_resumed", f"Resuming '{workflow}' workflow execution{detail}", created_at=_now()
    )


def workflow_succeeded(workflow: str) -> NewEvent:
    return NewEvent(
        "workflow_succeeded", f"'{workflow}' workflow execution succeeded", created_at=_now()
    )


def workflow_failed(workflow: str, error: str) -> NewEvent:
    return NewEvent(
        "workflow_failed",
        f"'{workflow}' workflow execution failed: {error}",
        level="error",
        created_at=_now(),
    )


def workflow_cancelled(workflow: str) -> NewEvent:
    return NewEvent(
        "workflow_cancelled", f"'{workflow}' workflow execution cancelled", created_at=_now()
    )


def cancel_requested(workflow: str, mode: str) -> NewEvent:
    how = {"cancel": "Cancel", "force": "Force-cancel", "kill": "Kill-cancel"}[mode]
    return NewEvent(
        "cancel_requested",
        f"{how} requested for '{workflow}' workflow execution",
        level="warning",
        created_at=_now(),
    )


def graph_stored(graph: str, tasks: int, edges: int) -> NewEvent:
    return NewEvent(
        "graph_stored",
        f"Stored graph '{graph}' with {tasks} tasks and {edges} dependencies",
        graph,
        created_at=_now(),
    )


def task_sent(graph: str, key: str, agent: str | None, now: float) -> NewEvent:
    where = f" to agent queue '{agent}'" if agent else ""
    return NewEvent("task_sent", f"Sending task '{key}'{where}", graph, key, created_at=now)


def task_started(graph: str, key: str, retries: int, max_retries: int, now: float) -> NewEvent:
    retry = f" [retry {retries}/{of_retries(max_retries)}]" if retries else ""
    return NewEvent("task_started", f"Task started '{key}'{retry}", graph, key, created_at=now)


def task_succeeded(graph: str, key: str, now: float) -> NewEvent:
    return NewEvent("task_succeeded", f"Task succeeded '{key}'", graph, key, created_at=now)


def task_rescheduled(
    graph: str, key: str, error: str, retry: int, max_retries: int, now: float
) -> NewEvent:
    return NewEvent(
        "task_rescheduled",
        f"Task failed '{key}' -> {error} [retry {retry}/{of_retries(max_retries)}]",
        graph,
        key,
        level="warning",
        created_at=now,
    )


def task_failed(
    graph: str, key: str, error: str, now: float, on_failure: str | None = None
) -> NewEvent:
    if on_failure == "ignore":
        return NewEvent(
            "task_failed",
            f"Task failed '{key}' -> {error} (ignored: its dependents run)",
            graph,
            key,
            level="warning",
            created_at=now,
        )
    return NewEvent(
        "task_failed", f"Task failed '{key}' -> {error}", graph, key, level="error", created_at=now
    )


def of_retries(max_retries: int) -> str:
    return "unlimited" if max_retries < 0 else str(max_retries)


def subgraph_retrying(
    graph: str, key: str, culprit: str, retry: int, max_retries: int, reset: int, now: float
) -> NewEvent:
    return NewEvent(
        "subgraph_retrying",
        f"Subgraph failed '{key}' -> {culprit}; {reset} tasks reset to pending "
        f"[retry {retry}/{of_retries(max_retries)}]",
        graph,
        key,
        level="warning",
        created_at=now,
    )


def subgraph_failed(graph: str, key: str, error: str, ignored: bool, now: float) -> NewEvent:
    tail = " (ignored: its dependents run)" if ignored else ""
    return NewEvent(
        "subgraph_failed",
        f"Subgraph failed '{key}' -> {error}{tail}",
        graph,
        key,
        level="warning" if ignored else "error",
        created_at=now,
    )


def task_reset(graph: str, key: str, previous: str, now: float) -> NewEvent:
    return NewEvent(
        "task_reset", f"Task reset '{key}' ({previous} -> pending)", graph, key, created_at=now
    )


def late_result(graph: str, key: str, attempt: int, outcome: str, now: float) -> NewEvent:
    return NewEvent(
        "task_late_result",
        f"Task '{key}' attempt {attempt + 1} ended after it was abandoned: {outcome} (ignored)",
        graph,
        key,
        level="warning",
        created_at=now,
    )
