"""The tasks of one node instance, and of one pair of instances, in a lifecycle graph.

Every task is bound to its instance (`options={"instance": ...}`): the engine hands the
operation `ctx.instance` (and `ctx.source`, `ctx.target`), writes the "-ing" state when
its attempt starts and the state its success sets, with the runtime properties the
operation changed, in the transaction of the task's success (docs/lifecycle.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dalsegno.blueprints import resolve_value
from dalsegno.lifecycle.operations import NOOP
from dalsegno.model.blueprints import (
    Blueprint,
    InstanceBinding,
    InstanceLink,
    InstanceState,
    NodeInstance,
    OperationSpec,
    Relationship,
)

St = InstanceState
# The node operations of install and uninstall: (operation, state its start writes, state
# its success writes).
INSTALL = (
    ("create", St.CREATING, St.CREATED),
    ("configure", St.CONFIGURING, St.CONFIGURED),
    ("start", St.STARTING, St.STARTED),
)
STOP = ("stop", St.STOPPING, St.STOPPED)
DELETE = ("delete", St.DELETING, St.DELETED)
# How far an install got, by the state it left: its steps below this are done.
INSTALL_DONE = {
    St.CREATED: 1,
    St.CONFIGURING: 1,
    St.CONFIGURED: 2,
    St.STARTING: 2,
    St.STOPPING: 2,
    St.STOPPED: 2,
    St.STARTED: 3,
}
# States in which an instance runs (stop and unlink apply), and in which nothing of it exists.
RUNNING = (St.STARTING, St.STARTED, St.STOPPING)
ABSENT = (St.UNINITIALIZED, St.DELETED)

Adder = Callable[..., Any]  # `Graph.add` or `Subgraph.add`


def installed_steps(instance: NodeInstance) -> int:
    """How many of create, configure, start an instance's state says are done."""
    return INSTALL_DONE.get(instance.state, 0)


def relationship_of(blueprint: Blueprint, node: str, link: InstanceLink) -> Relationship | None:
    for relationship in blueprint.node_templates[node].relationships:
        if relationship.type == link.type and relationship.target == link.target_node:
            return relationship
    return None


class Steps:
    """Adds a deployment's lifecycle tasks to a graph (or a subgraph)."""

    def __init__(self, blueprint: Blueprint, inputs: dict[str, Any], prefix: str = "") -> None:
        self.blueprint = blueprint
        self.inputs = inputs
        self.prefix = prefix
        self.on_failure: str | None = None  # "ignore": failures let the rest go on

    def task(
        self,
        add: Adder,
        key: str,
        spec: OperationSpec | None,
        binding: InstanceBinding,
        node: str,
    ) -> Any:
        """The task of `spec` bound to `binding`; it runs on the agent queue of `node`'s
        template when it names one (a missing operation's no-op runs manager-side)."""
        options: dict[str, Any] = {"instance": binding.to_json()}
        if self.on_failure is not None:
            options["on_failure"] = self.on_failure
        if spec is None:
            return add(NOOP, key=self.prefix + key, options=options)
        extra: dict[str, Any] = {
            name: getattr(spec, name)
            for name in ("retries", "retry_interval", "timeout")
            if getattr(spec, name) is not None
        }
        agent = self.blueprint.node_templates[node].agent
        if agent is not None:
            extra["agent"] = agent
        return add(
            spec.implementation,
            key=self.prefix + key,
            kwargs=resolve_value(spec.inputs, self.inputs),
            options=options,
            **extra,
        )

    def node_step(self, add: Adder, instance: NodeInstance, step: tuple[str, St, St]) -> Any:
        """A node operation; the template's, else a no-op that moves the state all the same."""
        name, starting, success = step
        spec = self.blueprint.node_templates[instance.node].operations.get(name)
        binding = InstanceBinding(instance.id, starting=starting.value, success=success.value)
        return self.task(add, f"{instance.id}.{name}", spec, binding, instance.node)

    def pair_steps(self, add: Adder, instance: NodeInstance, operation: str) -> list[Any]:
        """A relationship operation for each link of `instance` that has it, on the
        source's side, then on the target's."""
        tasks = []
        for link in instance.links:
            relationship = relationship_of(self.blueprint, instance.node, link)
            if relationship is None:
                continue
            sides = (
                ("source", instance.id, instance.node, relationship.source_operations),
                ("target", link.target_id, link.target_node, relationship.target_operations),
            )
            for side, runs_on, node, operations in sides:
                spec = operations.get(operation)
                if spec is None:
                    continue
                binding = InstanceBinding(runs_on, source=instance.id, target=link.target_id)
                key = f"{instance.id}.{operation}.{link.target_id}.{side}"
                tasks.append(self.task(add, key, spec, binding, node))
        return tasks

    def install(self, add: Adder, instance: NodeInstance, done: int = 0) -> list[Any]:
        """create, preconfigure, configure, postconfigure, start, establish: those not
        `done` (by the instance's state), in order."""
        chain: list[Any] = []
        if done < 1:
            chain.append(self.node_step(add, instance, INSTALL[0]))
        if done < 2:
            chain += self.pair_steps(add, instance, "preconfigure")
            chain.append(self.node_step(add, instance, INSTALL[1]))
            chain += self.pair_steps(add, instance, "postconfigure")
        if done < 3:
            chain.append(self.node_step(add, instance, INSTALL[2]))
            chain += self.pair_steps(add, instance, "establish")
        return chain

    def uninstall(self, add: Adder, instance: NodeInstance, ignore: bool) -> list[Any]:
        """stop and unlink (if it runs), delete (if anything of it exists); with failures
        ignored, a last step marks it `deleted` whatever its delete did."""
        chain: list[Any] = []
        if instance.state in RUNNING:
            chain.append(self.node_step(add, instance, STOP))
            chain += self.pair_steps(add, instance, "unlink")
        if instance.state not in ABSENT:
            chain.append(self.node_step(add, instance, DELETE))
        if ignore or instance.state is St.UNINITIALIZED:
            binding = InstanceBinding(instance.id, success=St.DELETED.value)
            chain.append(self.task(add, f"{instance.id}.deleted", None, binding, instance.node))
        return chain
