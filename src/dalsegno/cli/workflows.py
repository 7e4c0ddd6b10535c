"""`dalsegno workflows list`: the workflows a manager serves, with their parameters.

With `--manager` it asks the manager (`GET /api/v1/workflows`); without, it imports the
SPECs a manager started here would serve (`--workflows`, `DALSEGNO_WORKFLOWS`, or the
working directory), so an operator sees the list before starting one.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from dalsegno.cli import output
from dalsegno.cli.main import Settings, pass_settings, refusals
from dalsegno.cli.manager_security import workflows_option, workflows_specs
from dalsegno.cli.remote import RemoteClient


class WorkflowsClient(RemoteClient):
    def __enter__(self) -> WorkflowsClient:
        return self

    def list_workflows(self) -> builtins.list[dict[str, Any]]:
        return self._objects(self._call("GET", "/workflows"))


@click.group()
def workflows() -> None:
    """The workflows a manager serves (its allow-list)."""


@workflows.command("list")
@workflows_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, as GET /api/v1/workflows.")
@pass_settings
def workflows_list(settings: Settings, workflow_specs: tuple[str, ...], as_json: bool) -> None:
    """Each workflow's reference, whether it resumes, and its parameters."""
    with refusals():
        if settings.remote:
            with settings.client_of(WorkflowsClient) as client:
                documents = client.list_workflows()
        else:
            from dalsegno.service.workflows import AllowedWorkflows, workflow_json

            allowed = AllowedWorkflows.load(workflows_specs(workflow_specs))
            documents = [workflow_json(found) for found in allowed.workflows]
    if as_json:
        output.print_json(documents)
        return
    table = Table("workflow", "resumable", "parameters", "doc")
    for found in documents:
        table.add_row(
            escape(str(found["workflow"])),
            "yes" if found["resumable"] else "no",
            escape(", ".join(_parameter(p) for p in found["parameters"])) or "-",
            escape(str(found["doc"])),
        )
    output.console().print(table)


def _parameter(parameter: dict[str, Any]) -> str:
    text = str(parameter["name"])
    if parameter["annotation"]:
        text += f": {parameter['annotation']}"
    if not parameter["required"]:
        text += f" = {json.dumps(parameter['default'])}"
    return text
