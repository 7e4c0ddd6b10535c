"""What the faces (CLI, REST API, web UI) ask about blueprints and deployments, in one
place, over `BlueprintService` and `DeploymentService` (which check the ids,
`dalsegno.model.names.check_id`): a blueprint's size, and a deployment's executions.
Refusals raise before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dalsegno.lifecycle import WORKFLOWS
from dalsegno.model.blueprints import BlueprintRecord, DeploymentRecord, NodeInstance
from dalsegno.model.errors import RefusedError
from dalsegno.model.limits import MAX_BODY
from dalsegno.model.records import ExecutionRecord
from dalsegno.service.blueprints import BlueprintService, ServedOperations
from dalsegno.service.deployments import DeploymentService, lifecycle_reference
from dalsegno.store.base import Store

# A blueprint's YAML as uploaded: a REST body holds it whole (`MAX_BODY`).
MAX_BLUEPRINT = MAX_BODY // 2
Deployed = tuple[DeploymentRecord, list[NodeInstance]]
BUILT_IN = frozenset(WORKFLOWS)  # `install`...: the built-in workflows, by their bare names


def workflow_of(reference: str, deployment: str | None) -> str:
    """With a deployment, a built-in workflow's bare name (`install`) is its reference
    (`dalsegno.lifecycle:install`); any other reference is itself."""
    return reference if deployment is None else lifecycle_reference(reference.strip())


class DeploymentCalls:
    """Blueprints and deployments on one store; `served`: a manager's allow-list, which a
    blueprint's operations must be in (`ExecutionService.served_operations`)."""

    def __init__(self, store: Store, served: ServedOperations | None = None) -> None:
        self.store = store
        self._blueprints = BlueprintService(store, served)
        self._deployments = DeploymentService(store)

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
        if len(source.encode("utf-8", "replace")) > MAX_BLUEPRINT:
            msg = f"a blueprint is YAML text of at most {MAX_BLUEPRINT // 1024} KiB"
            raise RefusedError(msg)
        return self._blueprints.upload(source, blueprint_id, source=name, base_dir=base_dir)

    def blueprints(self) -> list[BlueprintRecord]:
        return self._blueprints.list()

    def blueprint(self, blueprint_id: str) -> BlueprintRecord:
        return self._blueprints.get(blueprint_id)

    def delete_blueprint(self, blueprint_id: str) -> None:
        self._blueprints.delete(blueprint_id)

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
        made = self._deployments.create(deployment_id, blueprint_id, inputs, from_text=from_text)
        return made.deployment, made.instances

    def deployments(self) -> list[Deployed]:
        return [
            (record, self.store.list_instances(record.id)) for record in self._deployments.list()
        ]

    def deployment(self, deployment_id: str) -> Deployed:
        found = self._deployments.get(deployment_id)
        return found.deployment, found.instances

    def delete(self, deployment_id: str, force: bool = False) -> None:
        self._deployments.delete(deployment_id, force)

    def executions(self, deployment_id: str, limit: int = 50) -> list[ExecutionRecord]:
        """The deployment's executions, newest first (the first `limit`)."""
        record = self._deployments.get(deployment_id).deployment
        return self.store.page_executions(deployment=record.id, limit=limit)
