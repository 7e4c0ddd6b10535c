"""How the CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.service import (
    EventRecord,
    ExecutionRecord,
    NewEvent,
    PlannedTask,
    ResumePlan,
    TaskRecord,
)
from dalsegno.service.views import event_json, execution_json

STATUS_STYLE = {
    "completed": "green",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "force_cancelling": "yellow",
    "kill_cancelling": "yellow",
    "rescheduled": "yellow",
    "started": "cyan",
    "sent": "cyan",
    "pending": "white",
    "queued": "white",
}


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() else 200
    return Console(file=stream, width=wide, highlight=False, soft_wrap=not stream.isatty())


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    seconds = (end or time.time()) - start
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def show_executions(executions: list[ExecutionRecord]) -> None:
    table = Table("id", "workflow", "status", "created", "duration", "error")
    for execution in executions:
        table.add_row(
            execution.id,
            escape(execution.workflow),
            _status(execution.status.value),
            _time(execution.created_at),
            _duration(execution.started_at, execution.ended_at),
            escape((execution.error or "")[:80]),
        )
    console().print(table)


def show_execution(
    execution: ExecutionRecord,
    tasks: list[TaskRecord],
    actions: Sequence[EventRecord] = (),
) -> None:
    out = console()
    out.print(f"[bold]Execution[/] {execution.id}")
    out.print(f"  workflow: {escape(execution.workflow)}")
    out.print(f"  status:   {_status(execution.status.value)}")
    out.print(f"  params:   {escape(json.dumps(execution.params))}")
    out.print(f"  created:  {_time(execution.created_at)}")
    out.print(f"  duration: {_duration(execution.started_at, execution.ended_at)}")
    if execution.error:
        out.print(f"  error:    [red]{escape(execution.error)}[/]")
    for action in actions:
        by = escape(action.actor or "?")
        out.print(f"  {_time(action.created_at)}  {escape(action.message)} (by {by})")
    table = Table("graph", "key", "operation", "agent", "status", "retries", "error")
    for task in tasks:
        table.add_row(
            escape(task.graph),
            escape(task.key),
            escape(task.operation),
            escape(task.agent or "-"),
            _status(task.status.value),
            str(task.retries),
            escape(task.error or ""),
        )
    out.print(table)


def show_plan(plan: ResumePlan) -> None:
    """The dry-run plan: one line per task, named by its key, with what resume does to it."""
    out = sys.stdout
    out.write(
        f"Resume plan for execution {plan.execution_id} ({plan.workflow}, {plan.status})"
        f"{' with --reset-operations' if plan.reset_operations else ''}:\n"
    )
    if not plan.workflow_resumable:
        out.write(
            f"  the workflow is not resumable: the resume fails at once with "
            f"'Cannot resume - workflow not resumable: {plan.workflow}'\n"
        )
    width = max((len(task.key) for task in plan.tasks), default=4)
    for task in plan.tasks:
        where = f" [agent {task.agent}]" if task.agent else ""
        graph = f"{task.graph}/" if task.graph != "main" else ""
        out.write(
            f"  {graph}{task.key:<{width}}  {task.action:<8} ({task.status}{where}) {task.reason}\n"
        )
    counts = plan.counts()
    summary = ", ".join(f"{counts[action]} {action}" for action in sorted(counts))
    out.write(f"Summary: {summary or 'no tasks'}. Nothing was changed (dry run).\n")


def event_line(
    created_at: float, level: str, graph: str | None, key: str | None, message: str
) -> str:
    """One event as a line (who asked for it is in `--json` and `executions get`)."""
    stamp = datetime.fromtimestamp(created_at, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
    where = f" [{graph}/{key}]" if key else ""
    return f"{stamp} {level.upper():<7}{where} {message}"


def print_events(records: Sequence[EventRecord], as_json: bool) -> None:
    out = sys.stdout
    for event in records:
        if as_json:
            out.write(json.dumps(event_json(event)) + "\n")
        else:
            out.write(
                event_line(
                    event.created_at, event.level, event.graph, event.task_key, event.message
                )
                + "\n"
            )
    out.flush()


def execution_document(
    execution: ExecutionRecord,
    tasks: list[TaskRecord] | None,
    actions: list[EventRecord] | None = None,
) -> Any:
    return execution_json(execution, tasks, actions)


# remote mode: the REST API's JSON documents (the same as `--json`) shown as in local mode


def _timestamp(text: Any) -> float | None:
    """An ISO 8601 timestamp of the JSON documents back as seconds since the epoch."""
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text).timestamp()


def execution_from_json(document: dict[str, Any]) -> ExecutionRecord:
    """An execution answered by a manager, as the record the tables show."""
    return ExecutionRecord(
        id=str(document["id"]),
        workflow=str(document["workflow"]),
        status=ExecutionState(document["status"]),
        params=document.get("params") or {},
        error=document.get("error"),
        created_at=_timestamp(document.get("created_at")) or 0.0,
        started_at=_timestamp(document.get("started_at")),
        ended_at=_timestamp(document.get("ended_at")),
        lease_owner=None,
        lease_expires_at=None,
        lease_token=0,
        lock_key=document.get("lock"),
    )


def task_from_json(document: dict[str, Any], execution_id: str) -> TaskRecord:
    """A task answered by a manager, as the record the tables show (ids are opaque: the
    record's number is only kept when the id is one)."""
    raw_id = str(document.get("id", ""))
    return TaskRecord(
        id=int(raw_id) if raw_id.isdigit() else 0,
        execution_id=execution_id,
        graph=str(document["graph"]),
        key=str(document["key"]),
        operation=str(document["operation"]),
        agent=document.get("agent"),
        kwargs_json="{}",
        max_retries=0,
        retry_interval=0.0,
        timeout=None,
        status=TaskState(document["status"]),
        retries=int(document.get("retries") or 0),
        error=document.get("error"),
        result_json=json.dumps(document.get("result")),
        attempts=0,
        next_run_at=None,
        started_at=None,
        ended_at=None,
    )


def show_executions_json(documents: list[dict[str, Any]]) -> None:
    """`executions list` of a manager's answer: the local table."""
    show_executions([execution_from_json(document) for document in documents])


def show_execution_json(document: dict[str, Any]) -> None:
    """`executions get` of a manager's answer: the local view."""
    execution = execution_from_json(document)
    tasks = [task_from_json(task, execution.id) for task in document.get("tasks") or []]
    actions = [
        EventRecord(
            id="",
            execution_id=execution.id,
            graph=None,
            task_key=None,
            type=str(action.get("type", "")),
            level="info",
            message=str(action.get("message", "")),
            created_at=_timestamp(action.get("created_at")) or 0.0,
            actor=action.get("actor"),
        )
        for action in document.get("actions") or []
    ]
    show_execution(execution, tasks, actions)


def event_from_json(document: dict[str, Any]) -> EventRecord:
    return EventRecord(
        id=str(document["id"]),
        execution_id=str(document["execution_id"]),
        graph=document.get("graph"),
        task_key=document.get("task_key"),
        type=str(document.get("type", "")),
        level=str(document.get("level", "info")),
        message=str(document.get("message", "")),
        created_at=_timestamp(document.get("created_at")) or 0.0,
        actor=document.get("actor"),
    )


def new_events_from_json(documents: Sequence[dict[str, Any]]) -> list[NewEvent]:
    """A manager's events as the batches `RunDisplay.events` shows."""
    found = []
    for document in documents:
        event = event_from_json(document)
        found.append(
            NewEvent(
                type=event.type,
                message=event.message,
                graph=event.graph,
                task_key=event.task_key,
                level=event.level,
                created_at=event.created_at,
                actor=event.actor,
            )
        )
    return found


def print_event_documents(documents: Sequence[dict[str, Any]], as_json: bool) -> None:
    """`events` of a manager's answer: its JSON objects as they came, or the local lines."""
    if as_json:
        out = sys.stdout
        for document in documents:
            out.write(json.dumps(document) + "\n")
        out.flush()
    else:
        print_events([event_from_json(document) for document in documents], as_json=False)


def plan_from_json(document: dict[str, Any]) -> ResumePlan:
    """A manager's dry-run answer (`views.plan_json`) as the plan `show_plan` prints."""
    return ResumePlan(
        execution_id=str(document["execution_id"]),
        workflow=str(document["workflow"]),
        status=str(document["status"]),
        reset_operations=bool(document.get("reset_operations")),
        workflow_resumable=bool(document.get("workflow_resumable", True)),
        tasks=[
            PlannedTask(
                graph=str(task["graph"]),
                key=str(task["key"]),
                operation=str(task["operation"]),
                agent=task.get("agent"),
                status=str(task["status"]),
                action=str(task["action"]),
                reason=str(task["reason"]),
            )
            for task in document.get("tasks") or []
        ],
    )


class RunDisplay:
    """Live progress of an execution run here.

    On a terminal: a progress bar (done/total, failed, running) redrawn from the store's
    task counts. Otherwise: one plain line per event, as it is committed.
    """

    def __init__(self, counts: Callable[[str], dict[str, int]], quiet: bool = False) -> None:
        self._counts = counts
        self._quiet = quiet
        self._live = sys.stdout.isatty() and not quiet
        self.execution_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_message = ""
        self._progress: Any = None
        self._bar: Any = None

    def created(self, execution_id: str) -> None:
        self.execution_id = execution_id
        if not self._quiet:
            console(stderr=not self._live).print(f"Execution {execution_id}")
        if self._live:
            self._start_live()

    def events(self, batch: Sequence[NewEvent]) -> None:
        if self._quiet:
            return
        if self._live:
            if batch:
                self._last_message = batch[-1].message
            return
        out = sys.stdout
        for event in batch:
            out.write(
                event_line(
                    event.created_at or time.time(),
                    event.level,
                    event.graph,
                    event.task_key,
                    event.message,
                )
                + "\n"
            )
        out.flush()

    def _start_live(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console(),
            transient=False,
        )
        self._bar = self._progress.add_task("tasks", total=None, detail="")
        self._progress.start()
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(0.2):
            self._update()

    def _update(self) -> None:
        if self.execution_id is None or self._progress is None:
            return
        try:
            counts = self._counts(self.execution_id)
        except Exception:  # noqa: BLE001 - a display refresh may skip a beat
            return
        total = sum(counts.values())
        done = counts.get("succeeded", 0)
        failed = counts.get("failed", 0)
        running = counts.get("started", 0) + counts.get("sent", 0)
        detail = f"failed {failed}  running {running}  {escape(self._last_message[:60])}"
        self._progress.update(self._bar, total=total or None, completed=done, detail=detail)

    def close(self) -> None:
        self._stop.set()
        if self._progress is not None:
            self._update()
            self._progress.stop()
