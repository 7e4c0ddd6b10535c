"""The JSON shapes of blueprints, deployments and node instances (docs/interface.md),
shared by the CLI's `--json`, the REST API and the web UI, as `dalsegno.service.views`
is for executions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from dalsegno.model.blueprints import BlueprintRecord, DeploymentRecord, NodeInstance
from dalsegno.service.views import iso


def blueprint_json(record: BlueprintRecord, *, full: bool = False) -> dict[str, Any]:
    """A blueprint: its id, description, inputs and node templates by name; `full` adds
    the YAML as uploaded (`source`) and the parsed form (`plan`)."""
    blueprint = record.blueprint
    found: dict[str, Any] = {
        "id": record.id,
        "description": blueprint.description,
        "created_at": iso(record.created_at),
        "inputs": [spec.to_json() for spec in blueprint.inputs.values()],
        "node_templates": list(blueprint.node_templates),
    }
    if full:
        found["source"] = record.source
        found["plan"] = blueprint.to_json()
    return found


def instance_json(instance: NodeInstance) -> dict[str, Any]:
    """A node instance with its state, runtime properties and relationships."""
    return {
        "id": instance.id,
        "node": instance.node,
        "state": str(instance.state),
        "runtime_properties": instance.runtime_properties,
        "links": [link.to_json() for link in instance.links],
        "host_id": instance.host_id,
        "version": instance.version,
        "created_at": iso(instance.created_at),
        "updated_at": iso(instance.updated_at),
    }


def state_counts(instances: Sequence[NodeInstance]) -> dict[str, int]:
    """How many instances are in each state, in the order states come up."""
    return dict(Counter(str(instance.state) for instance in instances))


def deployment_json(
    record: DeploymentRecord,
    instances: Sequence[NodeInstance] | None = None,
    *,
    with_instances: bool = False,
) -> dict[str, Any]:
    """A deployment: its blueprint, its resolved inputs, the lock key its executions take
    and how many of its instances are in each state; `with_instances` adds each instance."""
    found: dict[str, Any] = {
        "id": record.id,
        "blueprint_id": record.blueprint_id,
        "inputs": record.inputs,
        "created_at": iso(record.created_at),
        "lock": record.lock_key,
    }
    if instances is not None:
        found["instance_states"] = state_counts(instances)
        if with_instances:
            found["instances"] = [instance_json(instance) for instance in instances]
    return found
