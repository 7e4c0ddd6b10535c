"""`dalsegno`: run, resume, cancel and read executions (INTERFACE.md, CLI)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

import click

from dalsegno.cli import output
from dalsegno.cli.params import parse_params
from dalsegno.model.errors import DalsegnoError, RefusedError
from dalsegno.model.states import EXECUTION_END_STATES, ExecutionState
from dalsegno.service.views import plan_json

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_CANCELLED = 0, 1, 2, 3
OUTCOME_EXIT = {
    ExecutionState.COMPLETED: EXIT_OK,
    ExecutionState.FAILED: EXIT_FAILED,
    ExecutionState.CANCELLED: EXIT_CANCELLED,
}


@dataclass
class Settings:
    store_url: str | None
    manager_url: str | None
    concurrency: int | None

    def service(self) -> Any:
        """The service layer on the store (opening it creates or migrates the schema)."""
        if self.manager_url:
            refuse(
                "--manager (remote mode) needs the manager service, which this version does "
                "not ship yet; run without --manager to work on the store directly"
            )
        from dalsegno.service import open_service

        return open_service(self.store_url, self.concurrency)


def refuse(message: str) -> NoReturn:
    """Exit 2 with a one-line reason on stderr."""
    line = " ".join(str(message).split())
    click.echo(f"error: {line}", err=True)
    sys.exit(EXIT_REFUSED)


@contextmanager
def refusals() -> Iterator[None]:
    """Every refusal becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except (RefusedError, ValueError) as exc:
        refuse(str(exc))
    except DalsegnoError as exc:
        refuse(str(exc))


pass_settings = click.make_pass_decorator(Settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store_url", envvar="DALSEGNO_STORE", help="Store URL (sqlite:///PATH).")
@click.option("--manager", "manager_url", envvar="DALSEGNO_MANAGER", help="Manager URL.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Manager-side operations run at once by an execution run here (default 32).",
)
@click.version_option(package_name="dalsegno")
@click.pass_context
def main(
    ctx: click.Context, store_url: str | None, manager_url: str | None, concurrency: int | None
) -> None:
    """dalsegno: task-graph workflows that resume exactly where they stopped."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    ctx.obj = Settings(store_url, manager_url, concurrency)


# running ---------------------------------------------------------------------------

_param_options = [
    click.option(
        "-p",
        "--param",
        "pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="A parameter; VALUE is read as JSON when it parses, else as a string.",
    ),
    click.option("--params", "params_json", metavar="JSON", help="All params as a JSON object."),
    click.option("-q", "--quiet", is_flag=True, help="Print no events, only the outcome."),
]


def param_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_param_options):
        func = option(func)
    return func


class CancelOnInterrupt:
    """Ctrl-C asks a graceful cancel; a second Ctrl-C forces it.

    The request is written from a thread: a signal handler must not wait for the store's
    write lock, which the interrupted thread may hold.
    """

    def __init__(self, service: Any) -> None:
        self._service = service
        self.execution_id: str | None = None
        self._presses = 0
        self._previous: Any = None

    def __enter__(self) -> CancelOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_interrupt(self, _signum: int, _frame: FrameType | None) -> None:
        self._presses += 1
        if self.execution_id is None:
            raise KeyboardInterrupt
        mode = "cancel" if self._presses == 1 else "force"
        hint = " (Ctrl-C again to force)" if mode == "cancel" else ""
        sys.stderr.write(f"\n{mode} requested{hint}\n")
        threading.Thread(target=self._request, args=(mode,), daemon=True).start()

    def _request(self, mode: str) -> None:
        try:
            self._service.cancel(self.execution_id, mode)
        except DalsegnoError as exc:
            sys.stderr.write(f"cancel not taken: {exc}\n")


def _finish(result: Any, service: Any, quiet: bool) -> NoReturn:
    outcome = result.outcome
    if outcome.abandoned:
        click.echo(f"execution {result.execution_id} abandoned here: {outcome.error}", err=True)
        sys.exit(EXIT_FAILED)
    status = outcome.status
    line = f"Execution {result.execution_id} {status.value}"
    if outcome.error:
        line += f": {outcome.error}"
    click.echo(line, err=True)
    _ = (service, quiet)
    sys.exit(OUTCOME_EXIT[status])


def _run_here(
    settings: Settings, ref: str, pairs: tuple[str, ...], params_json: str | None, quiet: bool
) -> NoReturn:
    with refusals():
        params = parse_params(pairs, params_json)
        service = settings.service()
        service.prepare(ref, params)  # refuse before anything is written
    display = output.RunDisplay(service.task_counts, quiet=quiet)
    with CancelOnInterrupt(service) as interrupt:

        def created(execution_id: str) -> None:
            interrupt.execution_id = execution_id
            display.created(execution_id)

        try:
            with refusals():
                result = service.start(ref, params, listener=display.events, on_created=created)
        finally:
            display.close()
    _finish(result, service, quiet)


@main.command()
@click.argument("ref")
@param_options
@pass_settings
def run(
    settings: Settings, ref: str, pairs: tuple[str, ...], params_json: str | None, quiet: bool
) -> None:
    """Start an execution of REF and run it to its end, with live progress.

    Exit code: 0 completed, 1 failed, 3 cancelled, 2 refused.
    """
    _run_here(settings, ref, pairs, params_json, quiet)


@main.group()
def executions() -> None:
    """Start, list, inspect, resume and cancel executions."""


@executions.command("start")
@click.argument("ref")
@param_options
@pass_settings
def executions_start(
    settings: Settings, ref: str, pairs: tuple[str, ...], params_json: str | None, quiet: bool
) -> None:
    """Start an execution; without a manager it runs here, as `run`."""
    _run_here(settings, ref, pairs, params_json, quiet)


@executions.command("list")
@click.option("--status", help="Only executions in this state.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@pass_settings
def executions_list(settings: Settings, status: str | None, as_json: bool) -> None:
    """Executions, newest first."""
    with refusals():
        found = settings.service().list_executions(status)
    if as_json:
        output.print_json([output.execution_document(execution, None) for execution in found])
    else:
        output.show_executions(found)


@executions.command("get")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="A JSON object with the tasks.")
@pass_settings
def executions_get(settings: Settings, execution_id: str, as_json: bool) -> None:
    """One execution with its tasks."""
    with refusals():
        execution, tasks = settings.service().get(execution_id)
    if as_json:
        output.print_json(output.execution_document(execution, tasks))
    else:
        output.show_execution(execution, tasks)


@executions.command("resume")
@click.argument("execution_id")
@click.option(
    "--reset-operations",
    is_flag=True,
    help="Also reset interrupted (sent, started) tasks to pending.",
)
@click.option("--dry-run", is_flag=True, help="Print what resume would do; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print no events, only the outcome.")
@pass_settings
def executions_resume(
    settings: Settings,
    execution_id: str,
    reset_operations: bool,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Resume a failed, cancelled or stuck execution here (DESIGN.md section 3)."""
    with refusals():
        service = settings.service()
        if dry_run:
            plan = service.plan(execution_id, reset_operations)
            if as_json:
                output.print_json(plan_json(plan))
            else:
                output.show_plan(plan)
            return
        execution = service.check_resume(execution_id)
    display = output.RunDisplay(service.task_counts, quiet=quiet)
    with CancelOnInterrupt(service) as interrupt:
        interrupt.execution_id = execution.id
        display.created(execution.id)
        try:
            with refusals():
                result = service.resume(execution.id, reset_operations, listener=display.events)
        finally:
            display.close()
    _finish(result, service, quiet)


@executions.command("cancel")
@click.argument("execution_id")
@click.option("--force", is_flag=True, help="Cancelled at once; running operations are left.")
@click.option("--kill", is_flag=True, help="Also stop running operations.")
@pass_settings
def executions_cancel(settings: Settings, execution_id: str, force: bool, kill: bool) -> None:
    """Ask to cancel an execution."""
    if force and kill:
        refuse("--force and --kill exclude each other")
    mode = "kill" if kill else "force" if force else "cancel"
    with refusals():
        execution = settings.service().cancel(execution_id, mode)
    click.echo(f"Execution {execution.id} {execution.status.value}")


@main.command()
@click.argument("execution_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the execution ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--after", help="Only events after this event id.")
@pass_settings
def events(
    settings: Settings, execution_id: str, follow: bool, as_json: bool, after: str | None
) -> None:
    """The execution's events and logs, oldest first."""
    with refusals():
        service = settings.service()
        execution = service.find(execution_id)
        batch = service.events(execution.id, after)
    output.print_events(batch, as_json)
    if not follow:
        return
    last = batch[-1].id if batch else after
    try:
        while True:
            ended = service.find(execution.id).status in EXECUTION_END_STATES
            batch = service.events(execution.id, last)
            output.print_events(batch, as_json)
            if batch:
                last = batch[-1].id
            elif ended:
                return
            else:
                time.sleep(0.25)
    except KeyboardInterrupt:
        return
