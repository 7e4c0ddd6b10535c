"""`dalsegno tokens create|list|revoke`: people's tokens with a role, and agents' tokens.

On the store here (whoever can open the store is its administrator), or through REST with
`--manager` and a token of the admin role. A new token's secret is printed once; the store
keeps its hash. docs/security.md says what each role may do.
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

import click
from rich.markup import escape
from rich.table import Table

from dalsegno.cli import output
from dalsegno.cli.main import Settings, pass_settings, refusals
from dalsegno.cli.remote import RemoteClient

ROLES = ("viewer", "operator", "admin", "agent")


class TokensClient(RemoteClient):
    """The `/tokens` routes of a manager's REST API (a token of the admin role)."""

    def __enter__(self) -> TokensClient:
        return self

    def create_token(self, name: str, role: str, queue: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "role": role}
        if queue is not None:
            body["queue"] = queue
        return self._object(self._call("POST", "/tokens", json=body))

    def list_tokens(self, revoked: bool) -> builtins.list[dict[str, Any]]:
        query = {"revoked": "true"} if revoked else None
        return self._objects(self._call("GET", "/tokens", params=query))

    def revoke_token(self, name: str) -> dict[str, Any]:
        return self._object(self._call("DELETE", f"/tokens/{quote(name, safe='')}"))


def _client(settings: Settings) -> TokensClient:
    return settings.client_of(TokensClient)


def _local(settings: Settings) -> Any:
    from dalsegno.service.access import AccessService

    return AccessService.on(settings.service().store)


@click.group()
def tokens() -> None:
    """People's and agents' tokens: create, list, revoke."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(ROLES),
    help="viewer reads; operator also starts, resumes, cancels; admin also manages tokens"
    " and agents; agent serves one --queue.",
)
@click.option("--queue", help="The queue an agent token serves (--role agent).")
@click.option("--json", "as_json", is_flag=True, help="The token as JSON, with its secret.")
@pass_settings
def tokens_create(
    settings: Settings, name: str, role: str, queue: str | None, as_json: bool
) -> None:
    """Create the token NAME; its secret is printed once (the store keeps a hash)."""
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                document = client.create_token(name, role, queue)
        else:
            from dalsegno.service.access import local_actor, token_json

            issued = _local(settings).issue(name, role, local_actor(), queue)
            document = {**token_json(issued.record), "token": issued.secret}
    if as_json:
        output.print_json(document)
    else:
        click.echo(document["token"])


@tokens.command("list")
@click.option("--revoked", is_flag=True, help="Also the revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, as GET /api/v1/tokens.")
@pass_settings
def tokens_list(settings: Settings, revoked: bool, as_json: bool) -> None:
    """Tokens by name, with their role (never their secrets)."""
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                documents = client.list_tokens(revoked)
        else:
            from dalsegno.service.access import token_json

            documents = [token_json(record) for record in _local(settings).list(revoked)]
    if as_json:
        output.print_json(documents)
        return
    columns = ["name", "role", "queue", "created", "by"]
    table = Table(*columns, *(["revoked", "by"] if revoked else []))
    for token in documents:
        row = [
            escape(str(token["name"])),
            escape(str(token["role"])),
            escape(str(token["queue"] or "-")),
            output._time(token["created_at"]),
            escape(str(token["created_by"] or "-")),
        ]
        if revoked:
            row += [output._time(token["revoked_at"]), escape(str(token["revoked_by"] or "-"))]
        table.add_row(*row)
    output.console().print(table)


@tokens.command("revoke")
@click.argument("name")
@pass_settings
def tokens_revoke(settings: Settings, name: str) -> None:
    """Revoke the token NAME: refused from now on, and its web UI sessions end at once."""
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                client.revoke_token(name)
        else:
            from dalsegno.service.access import local_actor

            _local(settings).revoke(name, local_actor())
    click.echo(f"Token {name} revoked")
