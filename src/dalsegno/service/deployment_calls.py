"""What the faces (CLI, REST API, web UI) ask about blueprints and deployments, in one
place: each call checks its arguments' shape and hands the work to the store and to
`dalsegno.blueprints` (parse, resolve, plan). Refusals raise before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dalsegno.model.blueprints import BlueprintRecord, DeploymentRecord, NodeInstance
from dalsegno.model.errors import NotFoundError, RefusedError
from dalsegno.model.limits import MAX_BODY
from dalsegno.model.records import ExecutionRecord
from dalsegno.store.base import Store

# A blueprint's YAML as uploaded: a REST body holds it whole (`MAX_BODY`), and the store
# keeps it as it came.
MAX_BLUEPRINT = MAX_BODY // 2
LIFECYCLE = "dalsegno.lifecycle"
BUILT_IN = ("install", "uninstall", "heal", "scale", "execute_operation")
Deployed = tuple[DeploymentRecord, list[NodeInstance]]
# The ids of blueprints and deployments: they name URLs, lock keys and instance ids.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_ID = re.compile(ID_PATTERN)


def workflow_of(reference: str, deployment: str | None) -> str:
    """`install` with a deployment is `dalsegno.lifecycle:install`; any other reference
    is itself."""
    if deployment is not None and reference.strip() in BUILT_IN:
        return f"{LIFECYCLE}:{reference.strip()}"
    return reference


def check_id(kind: str, value: Any) -> str:
    """A blueprint's or a deployment's id: a name (letters, digits, `_ . -`)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        msg = (
            f"a {kind} id is 1 to 100 letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit, not {value!r}"
        )
        raise RefusedError(msg)
    return value


class DeploymentCalls:
    """Blueprints and deployments on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # blueprints ------------------------------------------------------------------------

    def upload(
        self,
        source: str,
        blueprint_id: str,
        *,
        name: str = "blueprint.yaml",
        base_dir: Path | None = None,
    ) -> BlueprintRecord:
        """Parse, validate and store the blueprint `source` (YAML) as `blueprint_id`."""
        from dalsegno.blueprints import parse_blueprint

        check_id("blueprint", blueprint_id)
        if not isinstance(source, str) or len(source.encode("utf-8", "replace")) > MAX_BLUEPRINT:
            msg = f"a blueprint is YAML text of at most {MAX_BLUEPRINT // 1024} KiB"
            raise RefusedError(msg)
        blueprint = parse_blueprint(source, source=name, base_dir=base_dir)
        return self.store.put_blueprint(blueprint_id, source, blueprint)

    def blueprints(self) -> list[BlueprintRecord]:
        return self.store.list_blueprints()

    def blueprint(self, blueprint_id: str) -> BlueprintRecord:
        found = self.store.get_blueprint(blueprint_id)
        if found is None:
            msg = f"unknown blueprint: {blueprint_id}"
            raise NotFoundError(msg)
        return found

    def delete_blueprint(self, blueprint_id: str) -> None:
        self.store.delete_blueprint(blueprint_id)

    # deployments -----------------------------------------------------------------------

    def create(
        self,
        deployment_id: str,
        blueprint_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        from_text: bool = False,
    ) -> Deployed:
        """A new deployment of the blueprint with these inputs, with all its instances
        (`uninitialized`); `from_text`: the values are command-line texts."""
        from dalsegno.blueprints import plan_instances, resolve_inputs

        check_id("deployment", deployment_id)
        blueprint = self.blueprint(blueprint_id).blueprint
        resolved = resolve_inputs(blueprint, dict(inputs or {}), from_text=from_text)
        instances = plan_instances(blueprint, deployment_id, resolved)
        record = self.store.create_deployment(
            DeploymentRecord(deployment_id, blueprint_id, resolved, 0.0), instances
        )
        return record, self.store.list_instances(record.id)

    def deployments(self) -> list[Deployed]:
        return [
            (record, self.store.list_instances(record.id))
            for record in self.store.list_deployments()
        ]

    def deployment(self, deployment_id: str) -> Deployed:
        found = self.store.get_deployment(deployment_id)
        if found is None:
            msg = f"unknown deployment: {deployment_id}"
            raise NotFoundError(msg)
        return found, self.store.list_instances(found.id)

    def delete(self, deployment_id: str, force: bool = False) -> None:
        self.store.delete_deployment(deployment_id, force)

    def executions(self, deployment_id: str) -> list[ExecutionRecord]:
        """The deployment's executions, newest first."""
        record, _ = self.deployment(deployment_id)
        return [
            execution
            for execution in self.store.list_executions(None, brief=True)
            if execution.deployment_id == record.id
        ]
