"""The read commands' tables, drawn from the REST API's JSON documents (the same in local
mode, which turns its records into them first), sized for an 80-column terminal: short
ids, workflows by their file and function, errors cut to one line."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dalsegno.cli.output import console, how_long, status_markup, when

SHORT_ID = 8


def short_workflow(reference: str) -> str:
    """`/long/path/deploy.py:deploy` as `deploy.py:deploy`; a module reference as it is."""
    where, sep, name = reference.rpartition(":")
    return f"{PurePath(where).name}{sep}{name}" if sep else reference


def first_line(text: str | None, width: int = 200) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


# How wide a column may grow before it is cut with an ellipsis; the last column of each
# table (the error) takes what the terminal has left.
CAPS = {"workflow": 24, "operation": 24, "key": 24, "graph": 12, "agent": 12}
GAP = 2


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    """Rows of plain cells, one line each, cut to fit the console's width: every column
    as wide as its widest cell (capped), the last one taking what is left."""
    out = console()
    shown = [[Text.from_markup(cell) for cell in row] for row in rows]
    widths = [
        min(max([len(name)] + [cell.cell_len for cell in column]), CAPS.get(name, 10_000))
        for name, column in zip(
            columns, zip(*shown, strict=True) if shown else [[]] * len(columns), strict=True
        )
    ]
    left = out.width - sum(widths[:-1]) - GAP * (len(columns) - 1)
    widths[-1] = max(min(widths[-1], left), len(columns[-1]), 10)
    table = Table(box=None, pad_edge=False, padding=(0, GAP // 2), header_style="bold")
    for name, width in zip(columns, widths, strict=True):
        table.add_column(name, width=width, no_wrap=True, overflow="ellipsis")
    for row in shown:
        table.add_row(*row)
    out.print(table)


def show_executions(documents: list[dict[str, Any]]) -> None:
    """`executions list`: one line per execution."""
    rows = [
        [
            document["id"][:SHORT_ID],
            status_markup(str(document["status"]))
            + (" [dim](dry run)[/]" if document.get("dry_run") else ""),
            when(document.get("started_at") or document.get("created_at"), short=True),
            how_long(document),
            str(document.get("runs") or ""),
            escape(short_workflow(str(document["workflow"]))),
            escape(first_line(document.get("error"))),
        ]
        for document in documents
    ]
    print_table(["id", "status", "started", "duration", "runs", "workflow", "error"], rows)


def retry_settings(document: dict[str, Any]) -> str:
    """An execution's task retry settings, in words ("" when it has none)."""
    parts = []
    retries = document.get("task_retries")
    if retries is not None:
        parts.append("forever" if retries == -1 else f"{retries} per task")
    interval = document.get("task_retry_interval")
    if interval is not None:
        parts.append(f"every {interval:g}s")
    return ", ".join(parts)


def show_execution(document: dict[str, Any], limit: int) -> None:
    """`executions get`: the execution's facts, then its tasks (the first `limit`)."""
    out = console()
    out.print(f"[bold]Execution[/] {document['id']}")
    out.print(f"  workflow: {escape(str(document['workflow']))}")
    dry = " [bold](dry run: no operation is called)[/]" if document.get("dry_run") else ""
    out.print(f"  status:   {status_markup(str(document['status']))}{dry}")
    out.print(f"  params:   {escape(json.dumps(document.get('params')))}")
    out.print(f"  created:  {when(document.get('created_at'))}")
    out.print(f"  duration: {how_long(document)}")
    if document.get("runs"):
        out.print(f"  runs:     {document['runs']}")
    if document.get("lock"):
        out.print(f"  lock:     {escape(str(document['lock']))}")
    retries = retry_settings(document)
    if retries:
        out.print(f"  retries:  {retries}")
    if document.get("error"):
        out.print(f"  error:    [red]{escape(str(document['error']))}[/]")
    for action in document.get("actions") or []:
        by = escape(str(action.get("actor") or "?"))
        out.print(f"  {when(action.get('created_at'))}  {escape(str(action['message']))} (by {by})")
    tasks = document.get("tasks") or []
    rows = [
        [
            escape(str(task["graph"])),
            escape(shown_key(task)),
            escape(short_workflow(str(task["operation"]))),
            escape(task.get("agent") or "-"),
            task_status(task),
            str(task.get("retries", 0)),
            escape(first_line(task.get("error"))),
        ]
        for task in tasks
    ]
    print_table(["graph", "key", "operation", "agent", "status", "retries", "error"], rows)
    show_subgraphs(document.get("subgraphs") or [])
    if limit and len(tasks) >= limit:
        out.print(
            f"[dim]the first {limit} tasks: --limit 0 shows them all, --status and --graph "
            "filter them, `dalsegno tasks get ID KEY` shows one[/]"
        )


def show_subgraphs(subgraphs: list[dict[str, Any]]) -> None:
    """The subgraphs as an indented tree, each with its state and retry count."""
    if not subgraphs:
        return
    out = console()
    out.print("[bold]Subgraphs[/]")
    children: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for sub in subgraphs:
        children.setdefault((str(sub["graph"]), sub.get("parent")), []).append(sub)

    def walk(graph: str, parent: str | None, depth: int) -> None:
        for sub in children.get((graph, parent), []):
            limit = "unlimited" if sub["max_retries"] < 0 else sub["max_retries"]
            if sub.get("ignored"):
                state = "[yellow]failed (ignored)[/]"
            else:
                state = status_markup(str(sub["status"]))
            error = ""
            if sub["status"] != "pending":
                error = f"  {escape(first_line(sub.get('error')))}"
            name = f"{escape(graph)}/{escape(str(sub['key']))}"
            out.print(f"{'  ' * depth}{name}  {state}  retries {sub['retries']}/{limit}{error}")
            walk(graph, str(sub["key"]), depth + 1)

    for graph in dict.fromkeys(str(sub["graph"]) for sub in subgraphs):
        walk(graph, None, 1)


def shown_key(task: dict[str, Any]) -> str:
    """A task's key, after its subgraph's (`sub/key`) when it is in one."""
    return f"{task['subgraph']}/{task['key']}" if task.get("subgraph") else str(task["key"])


def task_status(task: dict[str, Any]) -> str:
    """A task's state; a failure its policy ignores says so, apart from the others."""
    if task.get("ignored"):
        return "[yellow]failed (ignored)[/]"
    return status_markup(str(task["status"]))


def show_tasks(documents: list[dict[str, Any]]) -> None:
    """`tasks list`: one line per task."""
    rows = [
        [
            escape(str(task["graph"])),
            escape(shown_key(task)),
            task_status(task),
            str(task.get("retries", 0)),
            str(task.get("attempt_count", "")),
            how_long(task),
            escape(first_line(task.get("error"))),
        ]
        for task in documents
    ]
    print_table(["graph", "key", "status", "retries", "attempts", "duration", "error"], rows)


def show_task(document: dict[str, Any]) -> None:
    """`tasks get`: one task, each attempt with its error in full, its log lines."""
    out = console()
    out.print(
        f"[bold]Task[/] {escape(str(document['key']))} [dim](graph "
        f"{escape(str(document['graph']))}, execution {document['execution_id']})[/] "
        f"{status_markup(str(document['status']))}"
    )
    out.print(f"  operation: {escape(str(document['operation']))}")
    out.print(f"  runs on:   {escape(document.get('agent') or 'the manager')}")
    out.print(f"  arguments: {escape(json.dumps(document.get('kwargs')))}")
    out.print(f"  retries:   {document['retries']} of {document['max_retries']}")
    if document.get("retry_at"):
        out.print(f"  next run:  {when(document['retry_at'])} UTC")
    out.print(f"  duration:  {how_long(document)}")
    if document.get("result") is not None:
        out.print(f"  result:    {escape(json.dumps(document['result']))}")
    attempts = document.get("attempts") or []
    out.print(f"[bold]Attempts[/] ({len(attempts)})")
    for attempt in attempts:
        out.print(
            f"  #{attempt['number']} {status_markup(str(attempt['outcome']))} on "
            f"{escape(str(attempt['worker']))}, {when(attempt['started_at'])} UTC, "
            f"{how_long(attempt)}"
        )
        if attempt.get("error"):
            for line in str(attempt["error"]).splitlines():
                out.print(f"      {escape(line)}", highlight=False)
    events = document.get("events") or []
    out.print(f"[bold]Events and log lines[/] (the last {len(events)})")
    for event in events:
        out.print(
            f"  {when(event['created_at'])} {str(event['level']).upper():<7} "
            f"{escape(str(event['message']))}"
        )
