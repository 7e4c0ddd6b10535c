"""A run's reads of the deployment it acts on: `ctx.deployment` of a workflow, and the view
a lifecycle task's operation gets when its attempt starts (`dalsegno.engine.instances`);
a deployment and its blueprint are read once a run (neither changes)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dalsegno.engine.instances import view_json
from dalsegno.model.blueprints import (
    Blueprint,
    DeploymentRecord,
    InstanceBinding,
    InstanceLink,
    NodeInstance,
)
from dalsegno.model.errors import NotFoundError
from dalsegno.store.deployment_records import DeploymentStore


class DeploymentReads:
    """The deployments (with their blueprints) one run reads."""

    def __init__(self, store: DeploymentStore) -> None:
        self._store = store
        self._found: dict[str, tuple[DeploymentRecord, Blueprint]] = {}

    def deployment(self, deployment_id: str) -> tuple[DeploymentRecord, Blueprint]:
        """A deployment and its blueprint; NotFoundError when either is gone."""
        found = self._found.get(deployment_id)
        if found is None:
            deployment = self._store.get_deployment(deployment_id)
            stored = None
            if deployment is not None:
                stored = self._store.get_blueprint(deployment.blueprint_id)
            if deployment is None or stored is None:
                msg = f"deployment {deployment_id} does not exist (any more)"
                raise NotFoundError(msg)
            found = self._found[deployment_id] = (deployment, stored.blueprint)
        return found

    def workflow(self, deployment_id: str) -> WorkflowDeployment:
        """`ctx.deployment` of a workflow run against `deployment_id`."""
        return WorkflowDeployment(self._store, *self.deployment(deployment_id))

    def task_view(self, binding_json: str) -> dict[str, Any]:
        """What a lifecycle task's operation sees, read now; NotFoundError when its
        instance or deployment is gone."""
        binding = InstanceBinding.from_json(json.loads(binding_json))
        instances = self._store.get_instances(binding.instance_ids)
        own = instances.get(binding.instance)
        if own is None:
            msg = f"node instance {binding.instance} does not exist (any more)"
            raise NotFoundError(msg)
        try:
            return view_json(binding, instances, *self.deployment(own.deployment_id))
        except KeyError as exc:  # the other side of a pair is gone
            raise NotFoundError(str(exc.args[0])) from None


class WorkflowDeployment:
    """`ctx.deployment` in a workflow run against a deployment: its id, inputs and
    blueprint (read when the run is taken up), its instances as stored now, and the one
    write a workflow makes to it, a scale's (`change_instances`)."""

    def __init__(self, store: DeploymentStore, record: DeploymentRecord, blueprint: Blueprint):
        self._store = store
        self.id = record.id
        self.blueprint_id = record.blueprint_id
        self.inputs = record.inputs
        self.lock_key = record.lock_key
        self.blueprint = blueprint

    @property
    def instances(self) -> list[NodeInstance]:
        """The deployment's node instances as stored now, in their planned order."""
        return self._store.list_instances(self.id)

    def change_instances(
        self,
        added: Sequence[NodeInstance] = (),
        removed: Sequence[str] = (),
        new_links: Mapping[str, Sequence[InstanceLink]] | None = None,
        dropped_links: Mapping[str, Sequence[InstanceLink]] | None = None,
    ) -> None:
        """Add and remove instances and links, in one transaction (a scale)."""
        self._store.change_instances(self.id, added, removed, new_links, dropped_links)

    def __repr__(self) -> str:
        return f"<deployment {self.id}>"
