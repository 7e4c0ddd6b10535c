"""`dalsegno deployments create|list|get|delete`: deployments of blueprints and their node
instances (docs/blueprints.md). The built-in workflows run on one with `dalsegno run
install -d NAME` (`dalsegno.lifecycle`).

On the store here, or through a manager's REST API with `--manager` (`/deployments`).
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from dalsegno.cli import output
from dalsegno.cli.blueprints import client, json_flag, json_text, local_calls
from dalsegno.cli.main import Settings, pass_settings, refusals
from dalsegno.cli.tables import first_line, print_table
from dalsegno.model.errors import RefusedError


def input_texts(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-i KEY=VALUE`... as texts, read by each input's declared type."""
    texts: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"malformed input: -i {pair!r} is not KEY=VALUE"
            raise RefusedError(msg)
        texts[key.strip()] = value
    return texts


def _states(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {state}" for state, count in counts.items()) or "no instances"


@click.group()
def deployments() -> None:
    """Deployments of blueprints, with their node instances: create, list, read, delete."""


@deployments.command("create")
@click.argument("deployment_id", metavar="NAME")
@click.option("--blueprint", "-b", "blueprint_id", required=True, help="The blueprint's id.")
@click.option(
    "-i",
    "--input",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input's value, read by the input's type (repeatable).",
)
@json_flag("The deployment as JSON, with its instances.")
@pass_settings
def deployments_create(
    settings: Settings,
    deployment_id: str,
    blueprint_id: str,
    pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create the deployment NAME of a blueprint: its node instances, all `uninitialized`
    (`dalsegno run install -d NAME` installs them)."""
    from dalsegno.service.deployment_views import deployment_json

    with refusals():
        texts = input_texts(pairs)
        if settings.remote:
            with client(settings) as remote:
                document = remote.create_deployment(deployment_id, blueprint_id, texts)
        else:
            record, instances = local_calls(settings).create(
                deployment_id, blueprint_id, texts, from_text=True
            )
            document = deployment_json(record, instances, with_instances=True)
    if as_json:
        output.print_json(document)
        return
    click.echo(f"Deployment {document['id']} created: {len(document['instances'])} node instances")


@deployments.command("list")
@json_flag("A JSON array, as GET /api/v1/deployments.")
@pass_settings
def deployments_list(settings: Settings, as_json: bool) -> None:
    """Every deployment: its blueprint and how many instances are in each state."""
    from dalsegno.service.deployment_views import deployment_json

    with refusals():
        if settings.remote:
            with client(settings) as remote:
                documents = remote.list_of("deployments")
        else:
            documents = [
                deployment_json(record, instances)
                for record, instances in local_calls(settings).deployments()
            ]
    if as_json:
        output.print_json(documents)
        return
    print_table(
        ["id", "blueprint", "created", "instances"],
        [
            [
                escape(document["id"]),
                escape(document["blueprint_id"]),
                output.when(document["created_at"]),
                _states(document["instance_states"]),
            ]
            for document in documents
        ],
    )


@deployments.command("get")
@click.argument("deployment_id", metavar="NAME")
@json_flag("The deployment as JSON, with every instance and its runtime properties.")
@pass_settings
def deployments_get(settings: Settings, deployment_id: str, as_json: bool) -> None:
    """One deployment: its inputs, and each node instance with its state, runtime
    properties and relationships."""
    with refusals():
        document = _deployment(settings, deployment_id)
    if as_json:
        output.print_json(document)
        return
    show_deployment(document)


def _deployment(settings: Settings, deployment_id: str) -> dict[str, Any]:
    from dalsegno.service.deployment_views import deployment_json

    if settings.remote:
        with client(settings) as remote:
            return remote.one_of("deployments", deployment_id)
    record, instances = local_calls(settings).deployment(deployment_id)
    return deployment_json(record, instances, with_instances=True)


def show_deployment(document: dict[str, Any]) -> None:
    click.echo(
        f"Deployment {document['id']}  blueprint {document['blueprint_id']}  "
        f"created {output.when(document['created_at'])}  lock {document['lock']}"
    )
    click.echo(f"Inputs: {json_text(document['inputs'])}")
    click.echo(f"Instances: {_states(document['instance_states'])}")
    print_table(
        ["instance", "node", "state", "runtime properties", "relationships"],
        [
            [
                escape(instance["id"]),
                escape(instance["node"]),
                output.status_markup(instance["state"]),
                escape(first_line(json_text(instance["runtime_properties"]), 60)),
                escape(
                    ", ".join(f"{link['type']} {link['target_id']}" for link in instance["links"])
                )
                or "-",
            ]
            for instance in document["instances"]
        ],
    )


@deployments.command("delete")
@click.argument("deployment_id", metavar="NAME")
@click.option("--force", is_flag=True, help="Delete it even while some instances are not deleted.")
@json_flag('{"id": ..., "deleted": true} as JSON.')
@pass_settings
def deployments_delete(settings: Settings, deployment_id: str, force: bool, as_json: bool) -> None:
    """Delete a deployment and its instances: refused while an execution of it is active,
    and while any instance is not `deleted` (run uninstall first) unless --force."""
    with refusals():
        if settings.remote:
            with client(settings) as remote:
                document = remote.delete_one("deployments", deployment_id, force)
        else:
            local_calls(settings).delete(deployment_id, force)
            document = {"id": deployment_id, "deleted": True}
    if as_json:
        output.print_json(document)
        return
    click.echo(f"Deployment {document['id']} deleted")
