"""`dalsegno`: run, resume, cancel and read executions (docs/interface.md, CLI)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from dalsegno.cli import output
from dalsegno.cli.filters import event_filters
from dalsegno.cli.params import param_texts, parse_params
from dalsegno.model.errors import DalsegnoError, RefusedError, StoreUnavailableError
from dalsegno.model.states import EXECUTION_END_STATES, ExecutionState
from dalsegno.service.access import local_actor
from dalsegno.service.params import run_settings
from dalsegno.service.views import plan_json

if TYPE_CHECKING:
    from dalsegno.cli.remote import RemoteClient

Client = TypeVar("Client", bound="RemoteClient")

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_CANCELLED, EXIT_TAKEN_OVER = 0, 1, 2, 3, 4
OUTCOME_EXIT = {
    ExecutionState.COMPLETED: EXIT_OK,
    ExecutionState.FAILED: EXIT_FAILED,
    ExecutionState.CANCELLED: EXIT_CANCELLED,
}


# How often a command that follows an execution on a manager asks for new events.
REMOTE_POLL = 0.25


@dataclass
class Settings:
    store_url: str | None
    manager_url: str | None
    concurrency: int | None
    token: str | None = None
    token_file: str | None = None
    cacert: str | None = None

    @property
    def remote(self) -> bool:
        """With a manager URL every command speaks REST to the manager."""
        return bool(self.manager_url)

    def service(self) -> Any:
        """The service layer on the store (opening it creates or migrates the schema).

        Local mode only: with a manager URL the commands use `client()` instead.
        """
        from dalsegno.service import open_service

        return open_service(self.store_url, self.concurrency)

    def client(self) -> RemoteClient:
        """The manager's REST API, with the token of `--token`, `--token-file`,
        `DALSEGNO_TOKEN` or `$DALSEGNO_HOME/token`, in that order, and the CA of
        `--cacert` for an https:// manager."""
        from dalsegno.cli.remote import RemoteClient

        return self.client_of(RemoteClient)

    def client_of(self, kind: type[Client]) -> Client:
        """`client()`, as the `RemoteClient` subclass `kind` (more routes)."""
        from dalsegno.cli.remote import resolve_token

        assert self.manager_url
        return kind(
            self.manager_url, resolve_token(self.token, self.token_file), cacert=self.cacert
        )


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


class Commands(click.Group):
    """The command group: a store that cannot be reached is one line and exit 2 in every
    command, wherever the command first touches it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreUnavailableError as exc:
            refuse(str(exc))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "store_url",
    envvar="DALSEGNO_STORE",
    help="Store URL: sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (env "
    "DALSEGNO_STORE; default sqlite:///$DALSEGNO_HOME/dalsegno.db).",
)
@click.option(
    "--manager",
    "manager_url",
    envvar="DALSEGNO_MANAGER",
    help="Manager URL: every command speaks REST to it (env DALSEGNO_MANAGER).",
)
@click.option(
    "--token",
    help="The manager's token; else --token-file, env DALSEGNO_TOKEN, $DALSEGNO_HOME/token.",
)
@click.option("--token-file", metavar="PATH", help="Read the manager's token from this file.")
@click.option(
    "--cacert",
    metavar="FILE",
    envvar="DALSEGNO_CACERT",
    help="Check an https:// manager's certificate against this CA (PEM; a self-signed"
    " certificate itself works); default: the system's CAs (env DALSEGNO_CACERT).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Manager-side operations run at once by an execution run here (default 32).",
)
@click.version_option(package_name="dalsegno")
@click.pass_context
def main(
    ctx: click.Context,
    store_url: str | None,
    manager_url: str | None,
    token: str | None,
    token_file: str | None,
    cacert: str | None,
    concurrency: int | None,
) -> None:
    """dalsegno: task-graph workflows that resume exactly where they stopped."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    ctx.obj = Settings(store_url, manager_url, concurrency, token, token_file, cacert)


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
    click.option(
        "--lock",
        metavar="KEY",
        help="Wait in `queued` while another active execution holds KEY.",
    ),
    click.option(
        "-d",
        "--deployment",
        metavar="NAME",
        help="Run against this deployment, holding its lock; a built-in workflow's bare name "
        "(install, uninstall, heal, scale, execute_operation) is dalsegno.lifecycle's.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Run the workflow and store its graphs, but call no operation: each task logs "
        "what it would run and succeeds; its resumes stay dry.",
    ),
    click.option(
        "--task-retries",
        metavar="N",
        help="Retries of every task that sets none, nor its operation (-1: forever); "
        "stored with the execution.",
    ),
    click.option(
        "--task-retry-interval",
        metavar="S",
        help="Seconds between the retries of every task that sets no interval, nor its "
        "operation; stored with the execution.",
    ),
]


def with_deployment(how: dict[str, Any], ref: str, deployment: str | None) -> str:
    """`-d NAME`: the start's deployment in `how`; the workflow `ref` names with it. A
    built-in workflow's bare name without a deployment is refused, naming `-d`."""
    if deployment is None and ":" in ref:
        return ref  # the common case: nothing more to import
    from dalsegno.service.deployment_calls import BUILT_IN, workflow_of

    if deployment is None:
        if ref.strip() in BUILT_IN:
            msg = f"'{ref.strip()}' is a built-in workflow: run it against a deployment, -d NAME"
            raise RefusedError(msg)
        return ref
    how["deployment"] = deployment
    return workflow_of(ref, deployment)


def param_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_param_options):
        func = option(func)
    return func


class CancelOnInterrupt:
    """Ctrl-C asks a graceful cancel; a second Ctrl-C forces it.

    The request is written from a thread: a signal handler must not wait for the store's
    write lock, which the interrupted thread may hold.
    """

    def __init__(self, service: Any, actor: str | None = None) -> None:
        self._service = service
        # the remote client's cancel records the token's name on the manager instead
        self._actor = {} if actor is None else {"actor": actor}
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
            self._service.cancel(self.execution_id, mode, **self._actor)
        except DalsegnoError as exc:
            sys.stderr.write(f"cancel not taken: {exc}\n")


def _finish(result: Any, service: Any, quiet: bool) -> NoReturn:
    outcome = result.outcome
    if outcome.abandoned:
        click.echo(_left_here(result.execution_id, outcome.error, service), err=True)
        sys.exit(EXIT_TAKEN_OVER)
    status = outcome.status
    line = f"Execution {result.execution_id} {status.value}"
    if outcome.error:
        line += f": {outcome.error}"
    click.echo(line, err=True)
    _ = (service, quiet)
    sys.exit(OUTCOME_EXIT[status])


def _left_here(execution_id: str, reason: str | None, service: Any) -> str:
    """This process stopped running the execution: who goes on with it (exit 4)."""
    try:
        now = service.find(execution_id)
    except DalsegnoError:
        now = None
    owner = now.lease_owner if now is not None else None
    if owner is not None:
        where = f"taken over by {owner.host} pid {owner.pid}; it goes on there"
    elif now is not None and now.status in EXECUTION_END_STATES:
        where = f"it ended {now.status.value} elsewhere"
    else:
        where = "left for the next manager or resume to take over"
    return f"Execution {execution_id} left this process ({reason or 'abandoned'}): {where}"


def _run_here(
    settings: Settings,
    ref: str,
    pairs: tuple[str, ...],
    params_json: str | None,
    quiet: bool,
    lock: str | None = None,
    how: dict[str, Any] | None = None,
) -> NoReturn:
    """`how`: the settings of the start (`run_settings`: dry run, task retries)."""
    how = how or {}
    if settings.remote:
        _run_remote(settings, ref, pairs, params_json, quiet, lock, how)
    with refusals():
        params, texts = parse_params(pairs, params_json), param_texts(pairs)
        service = settings.service()
        service.prepare(ref, params, texts)  # refuse before anything is written
    display = output.RunDisplay(service.task_counts, quiet=quiet)
    with CancelOnInterrupt(service, local_actor()) as interrupt:

        def created(execution_id: str) -> None:
            interrupt.execution_id = execution_id
            display.created(execution_id)

        try:
            with refusals():
                result = service.start(
                    ref,
                    params,
                    listener=display.events,
                    on_created=created,
                    lock=lock,
                    texts=texts,
                    actor=local_actor(),
                    **how,
                )
        finally:
            display.close()
    _finish(result, service, quiet)


# remote mode -----------------------------------------------------------------------


def _run_remote(
    settings: Settings,
    ref: str,
    pairs: tuple[str, ...],
    params_json: str | None,
    quiet: bool,
    lock: str | None = None,
    how: dict[str, Any] | None = None,
) -> NoReturn:
    """Hand the execution over to the manager and follow its events to its end."""
    with refusals():
        params = parse_params(pairs, params_json)
        client = settings.client()
    with client:
        with refusals():
            execution = client.start(ref, params, lock, param_texts(pairs), **(how or {}))
        _follow_remote_run(client, str(execution["id"]), quiet)


def _follow_remote_run(client: RemoteClient, execution_id: str, quiet: bool) -> NoReturn:
    """Print the execution's events as the manager commits them; exit with its outcome.

    Ctrl-C asks the manager to cancel it (a second Ctrl-C forces), and the command goes on
    following until the execution ends `cancelled`.
    """
    display = output.RunDisplay(client.task_counts, quiet=quiet)
    with CancelOnInterrupt(client) as interrupt:
        interrupt.execution_id = execution_id
        display.created(execution_id)
        try:
            with refusals():
                final = _follow_remote(
                    client,
                    execution_id,
                    None,
                    lambda batch: display.events(output.new_events_from_json(batch)),
                )
        finally:
            display.close()
    with refusals():
        status = ExecutionState(final["status"])
    line = f"Execution {execution_id} {status.value}"
    if final.get("error"):
        line += f": {final['error']}"
    click.echo(line, err=True)
    sys.exit(OUTCOME_EXIT.get(status, EXIT_FAILED))


def _follow_remote(
    client: RemoteClient,
    execution_id: str,
    after: str | None,
    emit: Callable[[list[dict[str, Any]]], None],
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hand each new batch of events to `emit` until the execution ends; the ended execution.

    Once the execution is seen ended, its events are read once more: everything it wrote
    was committed before its end state, so nothing is missed.
    """
    last = after
    while True:
        batch = _patiently(partial(client.events, **(filters or {})), execution_id, last)
        if batch:
            emit(batch)
            last = str(batch[-1]["id"])
            continue
        current: dict[str, Any] = _patiently(client.get, execution_id)
        if current.get("status") in EXECUTION_END_STATES:
            batch = _patiently(partial(client.events, **(filters or {})), execution_id, last)
            if batch:
                emit(batch)
            return current
        time.sleep(REMOTE_POLL)


FOLLOW_OUTAGE = 120.0  # seconds a follower keeps trying while the manager is unreachable


def _patiently(call: Callable[..., Any], *args: Any) -> Any:
    """Retry with backoff while the manager cannot be reached (a restart, a failover)."""
    from dalsegno.cli.remote import RemoteError

    waited, delay = 0.0, 0.2
    while True:
        try:
            return call(*args)
        except RemoteError as exc:
            if not exc.unreachable or waited >= FOLLOW_OUTAGE:
                raise
            if waited == 0.0:
                sys.stderr.write(f"{exc}; still trying for {FOLLOW_OUTAGE:g}s\n")
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)


# running ---------------------------------------------------------------------------


@main.command()
@click.argument("ref")
@param_options
@pass_settings
def run(
    settings: Settings,
    ref: str,
    pairs: tuple[str, ...],
    params_json: str | None,
    quiet: bool,
    lock: str | None,
    deployment: str | None,
    dry_run: bool,
    task_retries: str | None,
    task_retry_interval: str | None,
) -> None:
    """Start an execution of REF and run it to its end, with live progress.

    Exit code: 0 completed, 1 failed, 3 cancelled, 2 refused, 4 taken over by another owner.
    """
    with refusals():
        how = run_settings(dry_run, task_retries, task_retry_interval)
        ref = with_deployment(how, ref, deployment)
    _run_here(settings, ref, pairs, params_json, quiet, lock, how)


@main.group()
def executions() -> None:
    """Start, list, inspect, resume and cancel executions."""


@executions.command("start")
@click.argument("ref")
@param_options
@pass_settings
def executions_start(
    settings: Settings,
    ref: str,
    pairs: tuple[str, ...],
    params_json: str | None,
    quiet: bool,
    lock: str | None,
    deployment: str | None,
    dry_run: bool,
    task_retries: str | None,
    task_retry_interval: str | None,
) -> None:
    """Start an execution: a manager runs it (its id is printed at once); without a manager
    it runs here, as `run`."""
    with refusals():
        how = run_settings(dry_run, task_retries, task_retry_interval)
        ref = with_deployment(how, ref, deployment)
    if settings.remote:
        with refusals():
            params = parse_params(pairs, params_json)
            with settings.client() as client:
                execution = client.start(ref, params, lock, param_texts(pairs), **how)
        click.echo(execution["id"])
        return
    _run_here(settings, ref, pairs, params_json, quiet, lock, how)


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
    """Resume a failed, cancelled or stuck execution (docs/design.md section 3): here, or with a
    manager URL by handing it back to the manager."""
    if settings.remote:
        with refusals(), settings.client() as client:
            answer = client.resume(execution_id, reset_operations, dry_run)
            if dry_run and as_json:
                output.print_json(answer)
            elif dry_run:
                output.show_plan(output.plan_from_json(answer))
            else:
                click.echo(f"Execution {answer['id']} {answer['status']}")
        return
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
    with CancelOnInterrupt(service, local_actor()) as interrupt:
        interrupt.execution_id = execution.id
        display.created(execution.id)
        try:
            with refusals():
                result = service.resume(
                    execution.id, reset_operations, listener=display.events, actor=local_actor()
                )
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
    if settings.remote:
        with refusals(), settings.client() as client:
            answer = client.cancel(execution_id, mode)
        click.echo(f"Execution {answer['id']} {answer['status']}")
        return
    with refusals():
        execution = settings.service().cancel(execution_id, mode, actor=local_actor())
    click.echo(f"Execution {execution.id} {execution.status.value}")


@main.command()
@click.argument("execution_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the execution ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--after", help="Only events after this event id.")
@event_filters
@pass_settings
def events(
    settings: Settings,
    execution_id: str,
    follow: bool,
    as_json: bool,
    after: str | None,
    filters: dict[str, Any],
) -> None:
    """The execution's events and logs, oldest first (of one task, a graph, a level and
    up, some types, with the filters).

    With --follow it exits with the execution's outcome: 0 completed, 1 failed, 3 cancelled.
    """
    if settings.remote:
        _remote_events(settings, execution_id, follow, as_json, after, filters)
        return
    with refusals():
        service = settings.service()
        execution = service.find(execution_id)
        batch = service.events(execution.id, after, **filters)
    output.print_events(batch, as_json)
    if not follow:
        return
    last = batch[-1].id if batch else after
    try:
        while True:
            status = service.find(execution.id).status
            batch = service.events(execution.id, last, **filters)
            output.print_events(batch, as_json)
            if batch:
                last = batch[-1].id
            elif status in EXECUTION_END_STATES:
                sys.exit(OUTCOME_EXIT[status])  # like `run`: 0 completed, 1 failed, 3 cancelled
            else:
                time.sleep(0.25)
    except KeyboardInterrupt:
        return


def _remote_events(
    settings: Settings,
    execution_id: str,
    follow: bool,
    as_json: bool,
    after: str | None,
    filters: dict[str, Any],
) -> None:
    with refusals(), settings.client() as client:
        execution = client.get(execution_id)  # refuses an unknown id, resolves a prefix
        batch = client.events(str(execution["id"]), after, **filters)
        output.print_event_documents(batch, as_json)
        if not follow:
            return
        last = str(batch[-1]["id"]) if batch else after
        try:
            final = _follow_remote(
                client,
                str(execution["id"]),
                last,
                lambda found: output.print_event_documents(found, as_json),
                filters,
            )
        except KeyboardInterrupt:
            return
    sys.exit(OUTCOME_EXIT.get(ExecutionState(final["status"]), EXIT_FAILED))


def _add_service_commands() -> None:
    from dalsegno.cli import housekeeping  # noqa: F401 - executions delete and purge
    from dalsegno.cli.agent import agent
    from dalsegno.cli.agents import agents
    from dalsegno.cli.blueprints import blueprints
    from dalsegno.cli.deployments import deployments
    from dalsegno.cli.listing import tasks
    from dalsegno.cli.serve import manager
    from dalsegno.cli.tokens import tokens
    from dalsegno.cli.workflows import workflows

    main.add_command(manager)
    main.add_command(agent)
    main.add_command(agents)
    main.add_command(tokens)
    main.add_command(tasks)
    main.add_command(workflows)
    main.add_command(blueprints)
    main.add_command(deployments)


_add_service_commands()
