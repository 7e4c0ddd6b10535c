"""`dalsegno agents list` and `dalsegno agents token QUEUE`: the agents a manager knows,
and tokens scoped to one queue. On the store here, or through REST with `--manager`."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from dalsegno.cli import output
from dalsegno.cli.main import Settings, pass_settings, refusals
from dalsegno.cli.remote import RemoteClient


class AgentsClient(RemoteClient):
    """The `/agents` routes of a manager's REST API (admin token)."""

    def __enter__(self) -> AgentsClient:
        return self

    def list_agents(self) -> list[dict[str, Any]]:
        return self._objects(self._call("GET", "/agents"))

    def create_token(self, queue: str, name: str | None = None) -> dict[str, Any]:
        body = {"queue": queue} if name is None else {"queue": queue, "name": name}
        return self._object(self._call("POST", "/agents/tokens", json=body))


def _client(settings: Settings) -> AgentsClient:
    return settings.client_of(AgentsClient)


def _local(settings: Settings) -> Any:
    from dalsegno.service.agents import AgentService

    return AgentService(settings.service())


@click.group()
def agents() -> None:
    """Agents serving queues, and their tokens."""


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, as GET /api/v1/agents.")
@pass_settings
def agents_list(settings: Settings, as_json: bool) -> None:
    """Agents: their queue, last heartbeat and the tasks they hold."""
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                documents = client.list_agents()
        else:
            from dalsegno.service.agents import agent_json

            documents = [agent_json(agent) for agent in _local(settings).list_agents()]
    if as_json:
        output.print_json(documents)
        return
    table = Table("name", "queue", "host", "pid", "last heartbeat", "running")
    now = time.time()
    for agent in documents:
        held = [
            f"{t['execution_id'][:8]}/{t['task_key']} ({t['status']})" for t in agent["running"]
        ]
        table.add_row(
            escape(str(agent["name"])),
            escape(str(agent["queue"])),
            escape(str(agent["host"])),
            str(agent["pid"]),
            f"{output._time(agent['last_heartbeat_at'])} "
            f"({max(0.0, now - agent['last_heartbeat_at']):.0f}s ago)",
            escape(", ".join(held)) or "-",
        )
    output.console().print(table)


@agents.command("token")
@click.argument("queue")
@click.option("--name", help="The token's name (default: agent- and 8 hex digits).")
@click.option("--json", "as_json", is_flag=True, help='{"queue": ..., "token": ..., "name": ...}')
@pass_settings
def agents_token(settings: Settings, queue: str, name: str | None, as_json: bool) -> None:
    """Create a token that may serve QUEUE only; it is printed once, the store keeps a hash.
    `dalsegno tokens list` shows it and `dalsegno tokens revoke NAME` revokes it."""
    with refusals():
        if settings.remote:
            with _client(settings) as client:
                document = client.create_token(queue, name)
        else:
            from dalsegno.service.access import local_actor

            issued = _local(settings).create_token(queue, local_actor(), name)
            document = {"queue": queue, "token": issued.secret, "name": issued.record.name}
    if as_json:
        output.print_json(document)
    else:
        click.echo(document["token"])
