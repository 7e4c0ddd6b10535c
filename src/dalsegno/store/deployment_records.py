"""The part of the `Store` protocol that keeps blueprints, deployments and node instances
(`dalsegno.store.deployments`; docs/lifecycle.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from dalsegno.model.blueprints import (
    Blueprint,
    BlueprintRecord,
    DeploymentRecord,
    InstanceLink,
    NodeInstance,
)
from dalsegno.model.records import InstanceChange


class DeploymentStore(Protocol):
    # blueprints: refused (ConflictError) when the id is taken, or when a deployment uses it
    def put_blueprint(
        self, blueprint_id: str, source: str, blueprint: Blueprint
    ) -> BlueprintRecord: ...

    def get_blueprint(self, blueprint_id: str) -> BlueprintRecord | None: ...

    def list_blueprints(self) -> list[BlueprintRecord]: ...

    def delete_blueprint(self, blueprint_id: str) -> None: ...

    # deployments: created with all their instances in one transaction; a delete is refused
    # while an execution of it is active, and while an instance exists unless `force`
    def create_deployment(
        self, deployment: DeploymentRecord, instances: Sequence[NodeInstance]
    ) -> DeploymentRecord: ...

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None: ...

    def list_deployments(self) -> list[DeploymentRecord]: ...

    def delete_deployment(self, deployment_id: str, force: bool = False) -> None: ...

    # node instances
    def list_instances(self, deployment_id: str) -> list[NodeInstance]: ...

    def get_instances(self, instance_ids: Sequence[str]) -> dict[str, NodeInstance]: ...

    def change_instances(
        self,
        deployment_id: str,
        added: Sequence[NodeInstance] = (),
        removed: Sequence[str] = (),
        new_links: Mapping[str, Sequence[InstanceLink]] | None = None,
        dropped_links: Mapping[str, Sequence[InstanceLink]] | None = None,
    ) -> None: ...

    def update_instances(self, changes: Sequence[InstanceChange]) -> None: ...
