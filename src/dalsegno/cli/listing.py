"""The CLI's read commands that page: `executions list`, `executions get`, `tasks list`,
`tasks get`. Each reads the same pages here (on the store) and through a manager (REST
with `limit` and `cursor`), turns them into the REST API's JSON documents, and shows those:
one path for both modes, so they print the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from dalsegno.cli import output, tables
from dalsegno.cli.main import Settings, executions, pass_settings, refusals
from dalsegno.model.names import check_id
from dalsegno.service.views import execution_json, task_detail_json, task_summary_json

PAGE = 1000  # rows asked for at a time while a command walks a list
TABLE_TASKS = 100  # tasks `executions get` shows in its table unless told otherwise

Fetch = Callable[[str | None, int], tuple[list[dict[str, Any]], str | None]]


def walk(fetch: Fetch, limit: int) -> Iterator[dict[str, Any]]:
    """Rows from page after page until `limit` rows (0: all) or the end of the list."""
    given, cursor = 0, None
    while limit == 0 or given < limit:
        size = PAGE if limit == 0 else min(PAGE, limit - given)
        rows, cursor = fetch(cursor, size)
        yield from rows
        given += len(rows)
        if cursor is None or not rows:
            return


@contextmanager
def _client(settings: Settings) -> Iterator[Any]:
    """The manager's REST API with a manager URL (closed after), else None."""
    if not settings.remote:
        yield None
        return
    with settings.client() as client:
        yield client


def _statuses(values: tuple[str, ...]) -> list[str]:
    return [name for value in values for name in value.split(",") if name]


def _executions_fetch(settings: Settings, query: dict[str, Any], client: Any) -> Fetch:
    if client is not None:

        def remote(cursor: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
            rows, after, more = client.executions_page(
                {**query, "limit": size, **({"cursor": cursor} if cursor else {})}
            )
            return rows, after if more else None

        return remote
    service = settings.service()

    def local(cursor: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
        page = service.executions_page(
            statuses=query.get("status", []),
            workflow=query.get("workflow"),
            since=query.get("since"),
            search=query.get("q"),
            cursor=cursor,
            limit=size,
            deployment=query.get("deployment_id"),
        )
        return [execution_json(execution) for execution in page.items], page.cursor

    return local


@executions.command("list")
@click.option("--status", multiple=True, help="Only executions in this state (repeatable).")
@click.option("--workflow", metavar="REF", help="Only executions of this workflow reference.")
@click.option("--since", metavar="TIME", help="Created at or after: 30d, 12h, 90m, or ISO 8601.")
@click.option(
    "--search", "-s", metavar="TEXT", help="Ids starting with TEXT, or workflows containing it."
)
@click.option(
    "--deployment", "-d", metavar="NAME", help="Only executions run against this deployment."
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many (0: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@pass_settings
def executions_list(
    settings: Settings,
    status: tuple[str, ...],
    workflow: str | None,
    since: str | None,
    search: str | None,
    deployment: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Executions, newest first: a short id, its workflow, state, start, duration, runs
    and error."""
    query: dict[str, Any] = {"status": _statuses(status)}
    for key, value in (("workflow", workflow), ("since", since), ("q", search)):
        if value:
            query[key] = value
    with refusals(), _client(settings) as client:
        if deployment is not None:  # the same refusal on the store and through a manager
            query["deployment_id"] = check_id("deployment", deployment)
        found = list(walk(_executions_fetch(settings, query, client), limit))
    if as_json:
        output.print_json(found)
    else:
        tables.show_executions(found)


@executions.command("get")
@click.argument("execution_id")
@click.option("--task", "task_key", metavar="KEY", help="One task: its attempts and log lines.")
@click.option("--graph", metavar="NAME", help="Only this graph's tasks (or the task's graph).")
@click.option("--status", multiple=True, help="Only tasks in this state (repeatable).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help=f"At most this many tasks (0: all; the table shows {TABLE_TASKS} by default).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON object with the tasks.")
@pass_settings
def executions_get(
    settings: Settings,
    execution_id: str,
    task_key: str | None,
    graph: str | None,
    status: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """One execution with its tasks; with --task, one task with its attempts."""
    if task_key is not None:
        _show_task(settings, execution_id, task_key, graph, as_json)
        return
    statuses = _statuses(status)
    shown = limit if limit is not None else (0 if as_json else TABLE_TASKS)
    query: dict[str, Any] = {"status": statuses}
    if graph is not None:
        query["graph"] = graph
    if shown:
        query["limit"] = shown
    with refusals():
        if settings.remote:
            with settings.client() as client:
                document = client.get(execution_id, query)
        else:
            service = settings.service()
            execution, found = service.get(
                execution_id, graph=graph, statuses=statuses, limit=shown or None
            )
            document = execution_json(
                execution, found, service.actions(execution.id), service.subgraphs(execution.id)
            )
    if as_json:
        output.print_json(document)
    else:
        tables.show_execution(document, shown)


@click.group()
def tasks() -> None:
    """An execution's tasks: a page of them, or one with its attempts and log lines."""


@tasks.command("list")
@click.argument("execution_id")
@click.option("--graph", metavar="NAME", help="Only this graph's tasks.")
@click.option("--status", multiple=True, help="Only tasks in this state (repeatable).")
@click.option("--key", metavar="TEXT", help="Only tasks whose key contains TEXT.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many (0: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (no results: tasks get).")
@pass_settings
def tasks_list(
    settings: Settings,
    execution_id: str,
    graph: str | None,
    status: tuple[str, ...],
    key: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The execution's tasks in the order they were stored: state, retries, attempts,
    duration, error."""
    query: dict[str, Any] = {"status": _statuses(status)}
    for name, value in (("graph", graph), ("key", key)):
        if value is not None:
            query[name] = value
    with refusals(), _client(settings) as client:
        found = list(walk(_tasks_fetch(settings, execution_id, query, client), limit))
    if as_json:
        output.print_json(found)
    else:
        tables.show_tasks(found)


def _tasks_fetch(
    settings: Settings, execution_id: str, query: dict[str, Any], client: Any
) -> Fetch:
    if client is not None:

        def remote(cursor: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
            rows, after, more = client.tasks_page(
                execution_id, {**query, "limit": size, **({"cursor": cursor} if cursor else {})}
            )
            return rows, after if more else None

        return remote
    service = settings.service()

    def local(cursor: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
        page = service.tasks_page(
            execution_id,
            graph=query.get("graph"),
            statuses=query["status"],
            key=query.get("key"),
            cursor=cursor,
            limit=size,
        )
        return [task_summary_json(task) for task in page.items], page.cursor

    return local


@tasks.command("get")
@click.argument("execution_id")
@click.argument("task_key", metavar="KEY")
@click.option("--graph", metavar="NAME", help="Its graph, when the key is in several.")
@click.option("--json", "as_json", is_flag=True, help="A JSON object with attempts and events.")
@pass_settings
def tasks_get(
    settings: Settings, execution_id: str, task_key: str, graph: str | None, as_json: bool
) -> None:
    """Why a task failed: its attempts (where, when, outcome, error with traceback), its
    result, when it runs again, and its last log lines."""
    _show_task(settings, execution_id, task_key, graph, as_json)


def _show_task(
    settings: Settings, execution_id: str, task_key: str, graph: str | None, as_json: bool
) -> None:
    with refusals():
        if settings.remote:
            with settings.client() as client:
                document = client.task(execution_id, task_key, graph)
        else:
            detail = settings.service().task_by_key(execution_id, task_key, graph)
            document = task_detail_json(detail)
    if as_json:
        output.print_json(document)
    else:
        tables.show_task(document)
