"""`dalsegno blueprints upload|list|get|delete`: the blueprints deployments are made of
(docs/blueprints.md).

On the store here, or through a manager's REST API with `--manager` (`/blueprints`). A
blueprint that is not valid is refused with one line naming its line and field, and
nothing is stored.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
from rich.markup import escape

from dalsegno.cli import output
from dalsegno.cli.main import Settings, pass_settings, refusals
from dalsegno.cli.remote import RemoteClient
from dalsegno.cli.tables import first_line, print_table
from dalsegno.model.errors import RefusedError

F = TypeVar("F", bound=Callable[..., Any])


class BlueprintsClient(RemoteClient):
    """The `/blueprints` and `/deployments` routes of a manager's REST API."""

    def __enter__(self) -> BlueprintsClient:
        return self

    def upload_blueprint(
        self, blueprint_id: str, source: str, name: str, base_dir: str
    ) -> dict[str, Any]:
        body = {"id": blueprint_id, "source": source, "name": name, "base_dir": base_dir}
        return self._object(self._call("POST", "/blueprints", json=body))

    def list_of(self, kind: str) -> builtins.list[dict[str, Any]]:
        return self._objects(self._call("GET", f"/{kind}"))

    def one_of(self, kind: str, key: str) -> dict[str, Any]:
        return self._object(self._call("GET", item_path(kind, key)))

    def delete_one(self, kind: str, key: str, force: bool = False) -> dict[str, Any]:
        query = {"force": "true"} if force else None
        return self._object(self._call("DELETE", item_path(kind, key), params=query))

    def create_deployment(
        self, deployment_id: str, blueprint_id: str, input_texts: dict[str, str]
    ) -> dict[str, Any]:
        body = {"id": deployment_id, "blueprint_id": blueprint_id, "input_texts": input_texts}
        return self._object(self._call("POST", "/deployments", json=body))


def item_path(kind: str, key: str) -> str:
    """`/blueprints/ID`: the id quoted whole, so it can never leave its place."""
    if not key.strip():
        msg = f"a {kind[:-1]} id is required"
        raise RefusedError(msg)
    return f"/{kind}/" + quote(key.strip(), safe="").replace(".", "%2E")


def local_calls(settings: Settings) -> Any:
    """The blueprint and deployment calls on the store here."""
    from dalsegno.service.deployment_calls import DeploymentCalls

    return DeploymentCalls(settings.service().store)


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def client(settings: Settings) -> BlueprintsClient:
    return settings.client_of(BlueprintsClient)


def json_flag(help_text: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


@click.group()
def blueprints() -> None:
    """Blueprints: upload, list, read, delete (docs/blueprints.md)."""


@blueprints.command("upload")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id", "blueprint_id", metavar="NAME", help="Its id (default: the file's stem).")
@json_flag("The stored blueprint as JSON.")
@pass_settings
def blueprints_upload(
    settings: Settings, file: Path, blueprint_id: str | None, as_json: bool
) -> None:
    """Validate the blueprint FILE and store it; its operation paths are read relative to
    the file's directory."""
    from dalsegno.service.deployment_views import blueprint_json

    with refusals():
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read the blueprint {file}: {exc}"
            raise RefusedError(msg) from None
        name = blueprint_id or file.stem
        base_dir = file.resolve().parent
        if settings.remote:
            with client(settings) as remote:
                document = remote.upload_blueprint(name, source, file.name, str(base_dir))
        else:
            record = local_calls(settings).upload(source, name, name=file.name, base_dir=base_dir)
            document = blueprint_json(record)
    if as_json:
        output.print_json(document)
        return
    templates = len(document["node_templates"])
    click.echo(f"Blueprint {document['id']} uploaded: {templates} node templates")


@blueprints.command("list")
@json_flag("A JSON array, as GET /api/v1/blueprints.")
@pass_settings
def blueprints_list(settings: Settings, as_json: bool) -> None:
    """Every blueprint: id, node templates, inputs, upload time."""
    from dalsegno.service.deployment_views import blueprint_json

    with refusals():
        if settings.remote:
            with client(settings) as remote:
                documents = remote.list_of("blueprints")
        else:
            documents = [blueprint_json(record) for record in local_calls(settings).blueprints()]
    if as_json:
        output.print_json(documents)
        return
    print_table(
        ["id", "templates", "inputs", "uploaded", "description"],
        [
            [
                escape(document["id"]),
                str(len(document["node_templates"])),
                escape(", ".join(spec["name"] for spec in document["inputs"])) or "-",
                output.when(document["created_at"]),
                escape(first_line(document["description"])),
            ]
            for document in documents
        ],
    )


@blueprints.command("get")
@click.argument("blueprint_id")
@click.option("--source", "show_source", is_flag=True, help="Print the YAML as uploaded.")
@json_flag("The blueprint as JSON, with its source and parsed plan.")
@pass_settings
def blueprints_get(settings: Settings, blueprint_id: str, show_source: bool, as_json: bool) -> None:
    """One blueprint: its inputs and node templates (with --source, its YAML)."""
    from dalsegno.service.deployment_views import blueprint_json

    with refusals():
        if settings.remote:
            with client(settings) as remote:
                document = remote.one_of("blueprints", blueprint_id)
        else:
            record = local_calls(settings).blueprint(blueprint_id)
            document = blueprint_json(record, full=True)
    if as_json:
        output.print_json(document)
        return
    if show_source:
        click.echo(document["source"], nl=not document["source"].endswith("\n"))
        return
    click.echo(f"Blueprint {document['id']}  uploaded {output.when(document['created_at'])}")
    if document["description"]:
        click.echo(first_line(document["description"]))
    if document["inputs"]:
        print_table(
            ["input", "type", "default", "description"],
            [
                [
                    escape(spec["name"]),
                    spec["type"],
                    escape(json_text(spec["default"])) if "default" in spec else "-",
                    escape(spec.get("description", "")),
                ]
                for spec in document["inputs"]
            ],
        )
    print_table(
        ["node", "type", "instances", "relationships"],
        [
            [
                escape(template["name"]),
                escape(template["type"]),
                escape(json_text(template["instances"])),
                escape(
                    ", ".join(
                        f"{link['type']} {link['target']}" for link in template["relationships"]
                    )
                )
                or "-",
            ]
            for template in document["plan"]["node_templates"]
        ],
    )


@blueprints.command("delete")
@click.argument("blueprint_id")
@json_flag('{"id": ..., "deleted": true} as JSON.')
@pass_settings
def blueprints_delete(settings: Settings, blueprint_id: str, as_json: bool) -> None:
    """Delete a blueprint (refused while a deployment uses it)."""
    with refusals():
        if settings.remote:
            with client(settings) as remote:
                document = remote.delete_one("blueprints", blueprint_id)
        else:
            local_calls(settings).delete_blueprint(blueprint_id)
            document = {"id": blueprint_id, "deleted": True}
    if as_json:
        output.print_json(document)
        return
    click.echo(f"Blueprint {document['id']} deleted")
