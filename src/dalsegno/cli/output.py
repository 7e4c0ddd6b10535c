"""How the CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from dalsegno.service import (
    EventRecord,
    ExecutionRecord,
    NewEvent,
    PlannedSubgraph,
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
    """A console on stdout (or stderr): a terminal's width, else `COLUMNS`, else 200."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() else _columns()
    return Console(file=stream, width=wide, highlight=False, soft_wrap=not stream.isatty())


def _columns() -> int:
    raw = os.environ.get("COLUMNS", "")
    return int(raw) if raw.isdigit() and int(raw) >= 40 else 200


def status_markup(status: str) -> str:
    """A state in its colour."""
    return _status(status)


def when(moment: str | float | None, short: bool = False) -> str:
    """A time of a JSON document (ISO 8601) or a record (seconds), in UTC:
    `2026-11-27 03:40:12`, or `11-27 03:40` when `short`."""
    seconds = _timestamp(moment) if isinstance(moment, str) else moment
    text = _time(seconds)
    return text[5:16] if short and seconds is not None else text


def how_long(document: dict[str, Any]) -> str:
    """How long an execution lasted: from its first start, over all its runs, to its last
    end (now while it runs); `runs` says how many there were."""
    first = document.get("first_started_at") or document.get("started_at")
    return _duration(_timestamp(first), _timestamp(document.get("ended_at")))


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


TAKE_UP_LINES = {
    "resume": "failed and rescheduled tasks are reset to pending (retries 0), then it runs",
    "recover": (
        "it crashed: it is taken over as a manager would (nothing is reset"
        " but interrupted tasks with --reset-operations)"
    ),
}


def show_plan(plan: ResumePlan) -> None:
    """The dry-run plan: one line per task, named by its key, with what resume does to it;
    or, for a workflow that is not resumable, the one thing that happens."""
    out = sys.stdout
    out.write(
        f"Resume plan for execution {plan.execution_id} ({plan.workflow}, {plan.status})"
        f"{' with --reset-operations' if plan.reset_operations else ''}:\n"
    )
    if not plan.workflow_resumable:
        out.write(
            f"  the workflow is not resumable: the resume fails at once with "
            f"'Cannot resume - workflow not resumable: {plan.workflow}'; no task runs and "
            f"none is reset.\nNothing was changed (dry run).\n"
        )
        return
    if plan.take_up in TAKE_UP_LINES:
        out.write(f"  {TAKE_UP_LINES[plan.take_up]}\n")
    if plan.dry_run:
        out.write("  a dry-run execution: it stays dry, every task is simulated, none is called\n")
    if plan.lock_holder is not None:
        out.write(
            f"  it waits in queued first: lock '{plan.lock_key}' is held by execution "
            f"{plan.lock_holder}\n"
        )
    width = max((len(task.key) for task in plan.tasks), default=4)
    for task in plan.tasks:
        where = f" [agent {task.agent}]" if task.agent else ""
        graph = f"{task.graph}/" if task.graph != "main" else ""
        out.write(
            f"  {graph}{task.key:<{width}}  {task.action:<8} ({task.status}{where}) {task.reason}\n"
        )
    if plan.subgraphs:
        out.write("  subgraphs:\n")
        width = max(len(sub.key) for sub in plan.subgraphs)
        for sub in plan.subgraphs:
            graph = f"{sub.graph}/" if sub.graph != "main" else ""
            inside = f" in {sub.parent}" if sub.parent else ""
            out.write(
                f"  {graph}{sub.key:<{width}}  {sub.action:<8} ({sub.status}, subgraph{inside}) "
                f"{sub.reason}\n"
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
        take_up=str(document.get("take_up") or "resume"),
        lock_key=document.get("lock_key"),
        lock_holder=document.get("lock_holder"),
        dry_run=bool(document.get("dry_run")),
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
        subgraphs=[
            PlannedSubgraph(
                graph=str(sub["graph"]),
                key=str(sub["key"]),
                parent=sub.get("parent"),
                status=str(sub["status"]),
                retries=int(sub["retries"]),
                max_retries=int(sub["max_retries"]),
                on_failure=str(sub["on_failure"]),
                action=str(sub["action"]),
                reason=str(sub["reason"]),
            )
            for sub in document.get("subgraphs") or []
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
