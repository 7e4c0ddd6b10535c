"""What a lifecycle operation sees of its deployment, and what it changes (docs/lifecycle.md).

A lifecycle task is bound to a node instance (`InstanceBinding`, stored with the task).
When its attempt starts, the owner reads the instance (and, for a relationship operation,
the other side of the pair), its deployment and its blueprint from the store, and hands
the operation `ctx.node`, `ctx.instance`, `ctx.deployment`, `ctx.source` and `ctx.target`
(`attach`). The operation changes `ctx.instance.runtime_properties` in place; when it
returns, `changes` turns what it changed into `InstanceChange`s, which the owner commits
with the task's success (one transaction), with the state the success sets.

The view travels as JSON (`view_json`), so an operation in a child process or on an agent
sees the same, and hands its changes back the same way (`changes_json`); the owner keeps
an agent's to the task's own instances (`reported_changes`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from dalsegno.blueprints import resolve_value
from dalsegno.model.blueprints import (
    Blueprint,
    DeploymentRecord,
    InstanceBinding,
    NodeInstance,
)
from dalsegno.model.records import InstanceChange


class NodeView:
    """`ctx.node`: the template of the instance (its properties with the inputs resolved)."""

    __slots__ = ("name", "properties", "type")

    def __init__(self, name: str, type: str, properties: dict[str, Any]) -> None:
        self.name = name
        self.type = type
        self.properties = properties

    def __repr__(self) -> str:
        return f"<node {self.name}>"


class InstanceView:
    """`ctx.instance`: its id, state and runtime properties (a dict the operation changes)."""

    __slots__ = ("host_id", "id", "node", "runtime_properties", "state")

    def __init__(
        self,
        id: str,
        node: str,
        state: str,
        runtime_properties: dict[str, Any],
        host_id: str | None,
    ) -> None:
        self.id = id
        self.node = node
        self.state = state
        self.runtime_properties = runtime_properties
        self.host_id = host_id

    def __repr__(self) -> str:
        return f"<instance {self.id} {self.state}>"


class Side:
    """`ctx.source` or `ctx.target` of a relationship operation."""

    __slots__ = ("instance", "node")

    def __init__(self, node: NodeView, instance: InstanceView) -> None:
        self.node = node
        self.instance = instance


class DeploymentView:
    """`ctx.deployment` in an operation: its id and inputs."""

    __slots__ = ("blueprint_id", "id", "inputs")

    def __init__(self, id: str, blueprint_id: str, inputs: dict[str, Any]) -> None:
        self.id = id
        self.blueprint_id = blueprint_id
        self.inputs = inputs


def view_json(
    binding: InstanceBinding,
    instances: dict[str, NodeInstance],
    deployment: DeploymentRecord,
    blueprint: Blueprint,
) -> dict[str, Any]:
    """What the operation sees, as JSON: refused (KeyError) when an instance is gone."""
    missing = [key for key in binding.instance_ids if key not in instances]
    if missing:
        msg = f"node instance {missing[0]} does not exist (any more)"
        raise KeyError(msg)

    def node(name: str) -> dict[str, Any]:
        template = blueprint.node_templates[name]
        properties = resolve_value(template.properties, deployment.inputs)
        return {"name": name, "type": template.type, "properties": properties}

    return {
        "binding": binding.to_json(),
        "deployment": {
            "id": deployment.id,
            "blueprint_id": deployment.blueprint_id,
            "inputs": deployment.inputs,
        },
        "instances": {
            key: {
                "id": key,
                "node": instances[key].node,
                "state": str(instances[key].state),
                "runtime_properties": instances[key].runtime_properties,
                "host_id": instances[key].host_id,
            }
            for key in binding.instance_ids
        },
        "nodes": {instances[key].node: node(instances[key].node) for key in binding.instance_ids},
    }


def attach(ctx: Any, view: dict[str, Any]) -> dict[str, InstanceView]:
    """Give `ctx` its deployment, node, instance and, for a pair, source and target (from a
    copy of `view`); returns the instance views by id, for `changes`."""
    data = copy.deepcopy(view)
    binding = InstanceBinding.from_json(data["binding"])
    nodes = {name: NodeView(**node) for name, node in data["nodes"].items()}
    views = {key: InstanceView(**item) for key, item in data["instances"].items()}

    def side(key: str | None) -> Side | None:
        if key is None:
            return None
        return Side(nodes[views[key].node], views[key])

    ctx.deployment = DeploymentView(**data["deployment"])
    ctx.instance = views[binding.instance]
    ctx.node = nodes[views[binding.instance].node]
    ctx.source = side(binding.source)
    ctx.target = side(binding.target)
    return views


def changes(view: dict[str, Any], views: dict[str, InstanceView]) -> list[InstanceChange]:
    """What the operation changed, key by key, with the state its success sets; raises
    ValueError when the runtime properties are no JSON object."""
    binding = InstanceBinding.from_json(view["binding"])
    succeeded_state = binding.success
    found = []
    for key, item in views.items():
        after = item.runtime_properties
        if not isinstance(after, dict):
            msg = f"runtime properties of {key} must be a dict, not {type(after).__name__}"
            raise ValueError(msg)
        json.dumps(after, allow_nan=False)  # ValueError, TypeError: not JSON
        before = view["instances"][key]["runtime_properties"]
        set_properties = {k: v for k, v in after.items() if k not in before or before[k] != v}
        unset = [k for k in before if k not in after]
        state = succeeded_state if key == binding.instance else None
        if set_properties or unset or state is not None:
            found.append(InstanceChange(key, state, set_properties, unset))
    return found


def changes_json(found: list[InstanceChange]) -> list[dict[str, Any]]:
    return [
        {
            "instance_id": change.instance_id,
            "state": change.state,
            "set": change.set_properties,
            "unset": change.unset_properties,
        }
        for change in found
    ]


def changes_from_json(data: list[dict[str, Any]]) -> list[InstanceChange]:
    return [
        InstanceChange(
            str(item["instance_id"]), item.get("state"), dict(item["set"]), list(item["unset"])
        )
        for item in data
    ]


def reported_changes(binding_json: str, reported_json: str | None) -> list[InstanceChange]:
    """The instance changes of a lifecycle task's success reported from elsewhere (an
    agent's result, `changes_json`): kept to the instances the task's binding names, with
    the state its success sets taken from the binding, whatever the report says (an
    agent's result without changes still sets it). ValueError when the report is bad."""
    binding = InstanceBinding.from_json(json.loads(binding_json))
    try:
        reported = changes_from_json(json.loads(reported_json)) if reported_json else []
    except (KeyError, TypeError, AttributeError, RecursionError) as exc:
        msg = f"bad instance changes: {exc}"
        raise ValueError(msg) from None
    found: list[InstanceChange] = []
    named = set(binding.instance_ids)
    for change in reported:
        if change.instance_id not in named:
            msg = f"instance changes name {change.instance_id}, not an instance of the task"
            raise ValueError(msg)
        state = binding.success if change.instance_id == binding.instance else None
        if change.set_properties or change.unset_properties or state is not None:
            found.append(
                InstanceChange(
                    change.instance_id, state, change.set_properties, change.unset_properties
                )
            )
    if binding.success is not None and all(c.instance_id != binding.instance for c in found):
        found.append(InstanceChange(binding.instance, binding.success))
    return found
