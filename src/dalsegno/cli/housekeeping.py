"""`dalsegno executions delete ID` and `dalsegno executions purge`: remove ended executions
with their tasks, attempts and events, on the store here or through a manager (admin)."""

from __future__ import annotations

from typing import Any

import click

from dalsegno.cli import output
from dalsegno.cli.main import Settings, executions, pass_settings, refusals
from dalsegno.cli.remote import RemoteClient, _path, resolve_token
from dalsegno.service.views import purge_json


class HousekeepingClient(RemoteClient):
    """The housekeeping routes of a manager's REST API (admin)."""

    def __enter__(self) -> HousekeepingClient:
        return self

    def delete(self, execution_id: str) -> dict[str, Any]:
        return self._object(self._call("DELETE", _path(execution_id)))

    def purge(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._object(self._call("POST", "/housekeeping/purge", json=body))


def _client(settings: Settings) -> HousekeepingClient:
    assert settings.manager_url
    return HousekeepingClient(
        settings.manager_url, resolve_token(settings.token, settings.token_file)
    )


@executions.command("delete")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help='{"id", "tasks", "events"}')
@pass_settings
def executions_delete(settings: Settings, execution_id: str, as_json: bool) -> None:
    """Delete an ended execution with its graphs, tasks, attempts and events (a running one
    must be cancelled first)."""
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                document = client.delete(execution_id)
        else:
            service = settings.service()
            execution = service.find(execution_id)
            removed = service.delete(execution.id)
            document = {"id": execution.id, "tasks": removed.tasks, "events": removed.events}
    if as_json:
        output.print_json(document)
    else:
        click.echo(
            f"Execution {document['id']} deleted "
            f"({document['tasks']} tasks, {document['events']} events)"
        )


@executions.command("purge")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    required=True,
    help="completed, failed or cancelled (repeatable, or comma-separated).",
)
@click.option(
    "--before", required=True, metavar="TIME", help="Ended before: 30d, 12h, or ISO 8601."
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Keep the newest N of each workflow, however old.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="A JSON object of the counts and ids.")
@pass_settings
def executions_purge(
    settings: Settings,
    statuses: tuple[str, ...],
    before: str,
    keep_last: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete the ended executions of these states that ended before TIME, in bounded
    batches that let running executions go on (docs/operations.md, "Retention")."""
    wanted = [name for value in statuses for name in value.split(",") if name]
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                body = {
                    "status": wanted,
                    "before": before,
                    "keep_last": keep_last,
                    "dry_run": dry_run,
                }
                document = client.purge(body)
        else:
            document = purge_json(settings.service().purge(wanted, before, keep_last, dry_run))
    if as_json:
        output.print_json(document)
    elif dry_run:
        click.echo(f"Would delete {document['executions']} executions (dry run; nothing deleted)")
        for execution_id in document["ids"]:
            click.echo(f"  {execution_id}")
    else:
        click.echo(
            f"Deleted {document['executions']} executions ({document['tasks']} tasks, "
            f"{document['events']} events)"
            + (
                f"; {document['skipped']} changed meanwhile and were kept"
                if document["skipped"]
                else ""
            )
        )
