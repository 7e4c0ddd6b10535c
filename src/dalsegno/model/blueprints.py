"""Blueprints, deployments and node instances: what should exist, and what does.

Plain data, no I/O. A blueprint is parsed from YAML by `dalsegno.blueprints` (which also
validates it and plans instances); the store keeps a blueprint as its source text and its
JSON form (`Blueprint.to_json`), a deployment as a blueprint with input values, and each
node instance with its state and runtime properties. The built-in lifecycle workflows
(`dalsegno.lifecycle`) turn them into task graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# The lifecycle interface of a node template, in the order install runs them.
NODE_OPERATIONS = ("create", "configure", "start", "stop", "delete")
# A relationship's operations; each may be given on the source side or the target side.
RELATIONSHIP_OPERATIONS = ("preconfigure", "postconfigure", "establish", "unlink")
RELATIONSHIP_TYPES = ("depends_on", "connected_to", "contained_in")
INPUT_TYPES = ("string", "integer", "float", "boolean", "list", "dict")


class InstanceState(StrEnum):
    UNINITIALIZED = "uninitialized"
    CREATING = "creating"
    CREATED = "created"
    CONFIGURING = "configuring"
    CONFIGURED = "configured"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class OperationSpec:
    """One lifecycle operation of a template or a relationship: an operation reference
    (`module:function` or `path/file.py:function`, a path relative to the blueprint's file
    made absolute at upload) with its inputs and task options (None: the operation's own)."""

    implementation: str
    inputs: dict[str, Any] = field(default_factory=dict)  # may hold {get_input: name}
    retries: int | None = None
    retry_interval: float | None = None
    timeout: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "implementation": self.implementation,
            "inputs": self.inputs,
            "retries": self.retries,
            "retry_interval": self.retry_interval,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OperationSpec:
        return cls(
            implementation=data["implementation"],
            inputs=dict(data.get("inputs") or {}),
            retries=data.get("retries"),
            retry_interval=data.get("retry_interval"),
            timeout=data.get("timeout"),
        )


def _operations_to_json(operations: dict[str, OperationSpec]) -> dict[str, Any]:
    return {name: spec.to_json() for name, spec in operations.items()}


def _operations_from_json(data: dict[str, Any] | None) -> dict[str, OperationSpec]:
    return {name: OperationSpec.from_json(spec) for name, spec in (data or {}).items()}


@dataclass(frozen=True, slots=True)
class Relationship:
    """A relationship of a template to another (`target`), with the operations run for
    each pair of instances, on the source's side and on the target's side."""

    type: str  # one of RELATIONSHIP_TYPES
    target: str
    source_operations: dict[str, OperationSpec] = field(default_factory=dict)
    target_operations: dict[str, OperationSpec] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "target": self.target,
            "source_operations": _operations_to_json(self.source_operations),
            "target_operations": _operations_to_json(self.target_operations),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Relationship:
        return cls(
            type=data["type"],
            target=data["target"],
            source_operations=_operations_from_json(data.get("source_operations")),
            target_operations=_operations_from_json(data.get("target_operations")),
        )


@dataclass(frozen=True, slots=True)
class NodeTemplate:
    name: str
    type: str
    properties: dict[str, Any] = field(default_factory=dict)  # may hold {get_input: name}
    instances: int | dict[str, str] = 1  # a count, or {get_input: name}
    agent: str | None = None  # the agent queue its operations run on; None: manager-side
    operations: dict[str, OperationSpec] = field(default_factory=dict)
    relationships: tuple[Relationship, ...] = ()

    @property
    def container(self) -> str | None:
        """The template it is `contained_in`, if any."""
        for relationship in self.relationships:
            if relationship.type == "contained_in":
                return relationship.target
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "properties": self.properties,
            "instances": self.instances,
            "agent": self.agent,
            "operations": _operations_to_json(self.operations),
            "relationships": [relationship.to_json() for relationship in self.relationships],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeTemplate:
        return cls(
            name=data["name"],
            type=data["type"],
            properties=dict(data.get("properties") or {}),
            instances=data.get("instances", 1),
            agent=data.get("agent"),
            operations=_operations_from_json(data.get("operations")),
            relationships=tuple(
                Relationship.from_json(item) for item in data.get("relationships") or ()
            ),
        )


_NO_DEFAULT: Any = None


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: str = "string"  # one of INPUT_TYPES
    description: str = ""
    has_default: bool = False
    default: Any = _NO_DEFAULT

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.description:
            data["description"] = self.description
        if self.has_default:
            data["default"] = self.default
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            name=data["name"],
            type=data.get("type", "string"),
            description=data.get("description", ""),
            has_default="default" in data,
            default=data.get("default"),
        )


@dataclass(frozen=True, slots=True)
class Blueprint:
    """A parsed, validated blueprint. Templates keep the order of the file."""

    inputs: dict[str, InputSpec]
    node_templates: dict[str, NodeTemplate]
    outputs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "inputs": [spec.to_json() for spec in self.inputs.values()],
            "node_templates": [template.to_json() for template in self.node_templates.values()],
            "outputs": self.outputs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Blueprint:
        inputs = [InputSpec.from_json(item) for item in data.get("inputs") or ()]
        templates = [NodeTemplate.from_json(item) for item in data.get("node_templates") or ()]
        return cls(
            inputs={spec.name: spec for spec in inputs},
            node_templates={template.name: template for template in templates},
            outputs=dict(data.get("outputs") or {}),
            description=data.get("description", ""),
        )


@dataclass(frozen=True, slots=True)
class InstanceLink:
    """A relationship of one node instance to one target instance."""

    type: str
    target_node: str
    target_id: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "target_node": self.target_node, "target_id": self.target_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceLink:
        return cls(data["type"], data["target_node"], data["target_id"])


@dataclass(slots=True)
class NodeInstance:
    """A node instance of a deployment, as stored. Ids are stable: `<node>_<6 hex>`."""

    id: str
    deployment_id: str
    node: str
    state: InstanceState = InstanceState.UNINITIALIZED
    runtime_properties: dict[str, Any] = field(default_factory=dict)
    links: tuple[InstanceLink, ...] = ()
    host_id: str | None = None  # the instance it is contained in, if any
    version: int = 0  # bumped by every write: guards runtime-property updates
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class DeploymentRecord:
    id: str
    blueprint_id: str
    inputs: dict[str, Any]  # the resolved inputs: given values, then defaults
    created_at: float
    lock_key: str = ""  # every execution against the deployment takes it

    def __post_init__(self) -> None:
        if not self.lock_key:
            self.lock_key = f"deployment:{self.id}"


@dataclass(slots=True)
class BlueprintRecord:
    id: str
    source: str  # the YAML text as uploaded
    blueprint: Blueprint
    created_at: float


@dataclass(frozen=True, slots=True)
class InstanceBinding:
    """What a lifecycle task acts on (stored with the task, `tasks.instance`): the node
    instance its operation runs on (`ctx.instance`), for a relationship operation the pair
    (`ctx.source`, `ctx.target`; `instance` is one of them), the state its attempt's start
    writes (`starting`, e.g. `creating`) and the one its success writes (`success`, e.g.
    `created`), in the same transaction as the task's move (None: the state is kept)."""

    instance: str
    source: str | None = None
    target: str | None = None
    starting: str | None = None
    success: str | None = None

    def to_json(self) -> dict[str, str]:
        data = {"instance": self.instance}
        for name in ("source", "target", "starting", "success"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceBinding:
        return cls(
            instance=str(data["instance"]),
            source=data.get("source"),
            target=data.get("target"),
            starting=data.get("starting"),
            success=data.get("success"),
        )

    @property
    def instance_ids(self) -> list[str]:
        """Every instance the operation sees: its own, then the pair's other side."""
        ids = [self.instance]
        for other in (self.source, self.target):
            if other is not None and other not in ids:
                ids.append(other)
        return ids
