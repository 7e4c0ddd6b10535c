"""Deployments: create (inputs resolved, instances planned), list, read, delete, and what
an execution run against one takes (its lock key; docs/lifecycle.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dalsegno.blueprints import plan_instances, resolve_inputs
from dalsegno.lifecycle import WORKFLOWS
from dalsegno.model.blueprints import DeploymentRecord, NodeInstance
from dalsegno.model.errors import NotFoundError, RefusedError
from dalsegno.model.names import check_id
from dalsegno.model.records import ExecutionSettings
from dalsegno.store.base import Store


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """A deployment with its instances, as the faces show it."""

    deployment: DeploymentRecord
    instances: list[NodeInstance]


def lifecycle_reference(workflow: str) -> str:
    """The reference of a built-in lifecycle workflow given by its name (`install`...),
    or `workflow` itself."""
    return WORKFLOWS.get(workflow, workflow)


def against_deployment(
    store: Store, deployment_id: str | None, lock: str | None, settings: ExecutionSettings
) -> tuple[str | None, ExecutionSettings]:
    """The lock key and settings of an execution run against `deployment_id` (if any): it
    takes the deployment's lock key, so that one execution of a deployment runs at a time."""
    if deployment_id is None:
        return lock, settings
    if not isinstance(deployment_id, str) or not deployment_id:
        msg = "a deployment is named by a non-empty string"
        raise RefusedError(msg)
    deployment = store.get_deployment(deployment_id)
    if deployment is None:
        msg = f"unknown deployment: {deployment_id}"
        raise NotFoundError(msg)
    if lock is not None and lock != deployment.lock_key:
        msg = (
            f"an execution against deployment {deployment_id} takes its lock key "
            f"'{deployment.lock_key}': give no other lock"
        )
        raise RefusedError(msg)
    return deployment.lock_key, replace(settings, deployment_id=deployment.id)


class DeploymentService:
    """Deployments of blueprints on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        deployment_id: str,
        blueprint_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        from_text: bool = False,
    ) -> DeploymentView:
        """Create a deployment of a stored blueprint: its inputs resolved (`from_text`: the
        values are command-line texts, read by each input's type) and every node instance
        planned, stored in one transaction; refused in one line, storing nothing."""
        check_id("deployment", deployment_id)
        stored = self.store.get_blueprint(blueprint_id)
        if stored is None:
            msg = f"unknown blueprint: {blueprint_id}"
            raise NotFoundError(msg)
        resolved = resolve_inputs(stored.blueprint, inputs or {}, from_text=from_text)
        planned = plan_instances(stored.blueprint, deployment_id, resolved)
        return self.create_planned(deployment_id, blueprint_id, resolved, planned)

    def create_planned(
        self,
        deployment_id: str,
        blueprint_id: str,
        inputs: Mapping[str, Any],
        instances: list[NodeInstance],
    ) -> DeploymentView:
        """Store a deployment with instances already planned (`create` plans them)."""
        check_id("deployment", deployment_id)
        stored = self.store.get_blueprint(blueprint_id)
        if stored is None:
            msg = f"unknown blueprint: {blueprint_id}"
            raise NotFoundError(msg)
        record = DeploymentRecord(deployment_id, blueprint_id, dict(inputs), 0.0)
        created = self.store.create_deployment(record, instances)
        return DeploymentView(created, self.store.list_instances(deployment_id))

    def get(self, deployment_id: str) -> DeploymentView:
        found = self.store.get_deployment(deployment_id)
        if found is None:
            msg = f"unknown deployment: {deployment_id}"
            raise NotFoundError(msg)
        return DeploymentView(found, self.store.list_instances(deployment_id))

    def list(self) -> list[DeploymentRecord]:
        return self.store.list_deployments()

    def delete(self, deployment_id: str, force: bool = False) -> None:
        """Refused while an execution of it is active, and while an instance is not
        deleted unless `force`."""
        self.store.delete_deployment(deployment_id, force)
