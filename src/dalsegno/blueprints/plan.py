"""The node instances of a new deployment, and the links between them.

Counts: a template has `instances` of its own (a number or an input); a template
`contained_in` another has that many per instance of its container. Links: `contained_in`
links an instance to the one it was made for; `depends_on` and `connected_to` link it to
every instance of the target, except when source and target share a container template,
then only to the targets under the same container instance (an app connected to the
database of its own VM). Install order: every template after the templates it has a
relationship to (targets first), in the file's order where free.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dalsegno.blueprints.inputs import resolve_value
from dalsegno.model.blueprints import Blueprint, InstanceLink, NodeInstance, NodeTemplate
from dalsegno.model.errors import BlueprintError


def install_order(blueprint: Blueprint) -> list[str]:
    """The template names, each after the templates it has a relationship to."""
    templates = blueprint.node_templates
    if find_cycle(templates):
        msg = f"a cycle of relationships: {' -> '.join(find_cycle(templates))}"
        raise BlueprintError(msg)
    placed: list[str] = []
    done: set[str] = set()
    while len(placed) < len(templates):
        for name, template in templates.items():
            if name not in done and all(r.target in done for r in template.relationships):
                placed.append(name)
                done.add(name)
                break
    return placed


def instance_count(template: NodeTemplate, inputs: Mapping[str, Any]) -> int:
    """The instances `template` has (per container instance when it is contained)."""
    count = resolve_value(template.instances, inputs)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        msg = (
            f"node_templates.{template.name}.instances: must be a whole number >= 0, not {count!r}"
        )
        raise BlueprintError(msg)
    return count


def new_instance_id(node: str, used: set[str]) -> str:
    """`<node>_<6 hex>`, not in `used` (and added to it)."""
    while True:
        candidate = f"{node}_{secrets.token_hex(3)}"
        if candidate not in used:
            used.add(candidate)
            return candidate


def plan_instances(
    blueprint: Blueprint, deployment_id: str, inputs: Mapping[str, Any]
) -> list[NodeInstance]:
    """Every node instance of a new deployment, with its links and host, in install order."""
    used: set[str] = set()
    planned: list[NodeInstance] = []
    by_node: dict[str, list[NodeInstance]] = {}
    for name in install_order(blueprint):
        template = blueprint.node_templates[name]
        container = template.container
        hosts: Sequence[NodeInstance | None] = by_node[container] if container else [None]
        made = grow(template, deployment_id, inputs, hosts, used)
        by_node[name] = made
        planned.extend(made)
    fill_links(blueprint, planned, planned)
    return planned


def grow(
    template: NodeTemplate,
    deployment_id: str,
    inputs: Mapping[str, Any],
    hosts: Iterable[NodeInstance | None],
    used: set[str],
    count: int | None = None,
) -> list[NodeInstance]:
    """New instances of `template`: `count` (default: its own) for each host (None: not
    contained)."""
    if count is None:
        count = instance_count(template, inputs)
    return [
        NodeInstance(
            id=new_instance_id(template.name, used),
            deployment_id=deployment_id,
            node=template.name,
            host_id=None if host is None else host.id,
        )
        for host in hosts
        for _ in range(count)
    ]


def fill_links(
    blueprint: Blueprint, sources: Iterable[NodeInstance], everyone: Sequence[NodeInstance]
) -> None:
    """Set the links of each of `sources` to its targets among `everyone`."""
    scope = Scope(blueprint, everyone)
    for instance in sources:
        instance.links = tuple(scope.links_of(instance))


class Scope:
    """Which instances an instance's relationships reach, among a deployment's instances."""

    def __init__(self, blueprint: Blueprint, everyone: Sequence[NodeInstance]) -> None:
        self.templates = blueprint.node_templates
        self.by_id = {instance.id: instance for instance in everyone}
        self.by_node: dict[str, list[NodeInstance]] = {}
        for instance in everyone:
            self.by_node.setdefault(instance.node, []).append(instance)
        self._groups: dict[tuple[str, str], dict[str, list[NodeInstance]]] = {}

    def links_of(self, instance: NodeInstance) -> list[InstanceLink]:
        links: list[InstanceLink] = []
        for relationship in self.templates[instance.node].relationships:
            for target in self.targets(instance, relationship.type, relationship.target):
                links.append(InstanceLink(relationship.type, target.node, target.id))
        return links

    def targets(self, instance: NodeInstance, kind: str, node: str) -> list[NodeInstance]:
        if kind == "contained_in":
            host = self.by_id.get(instance.host_id or "")
            return [host] if host is not None else []
        candidates = self.by_node.get(node, [])
        shared = self.shared_container(instance.node, node)
        if shared is None:
            return list(candidates)
        anchor = self.ancestor(instance, shared)
        if anchor is None:
            return []
        return self.grouped(node, shared).get(anchor.id, [])

    def grouped(self, node: str, container: str) -> dict[str, list[NodeInstance]]:
        """The instances of `node` by the id of their `container` instance (cached)."""
        key = (node, container)
        found = self._groups.get(key)
        if found is None:
            found = {}
            for target in self.by_node.get(node, []):
                holder = self.ancestor(target, container)
                if holder is not None:
                    found.setdefault(holder.id, []).append(target)
            self._groups[key] = found
        return found

    def chain(self, node: str) -> list[str]:
        """The templates `node` is contained in, nearest first."""
        found: list[str] = []
        container = self.templates[node].container
        while container is not None:
            found.append(container)
            container = self.templates[container].container
        return found

    def shared_container(self, source: str, target: str) -> str | None:
        """The nearest template that contains the source and contains (or is) the target."""
        reach = {target, *self.chain(target)}
        return next((name for name in self.chain(source) if name in reach), None)

    def ancestor(self, instance: NodeInstance, node: str) -> NodeInstance | None:
        """The instance of `node` that holds `instance` (itself if it is one)."""
        current: NodeInstance | None = instance
        while current is not None and current.node != node:
            current = self.by_id.get(current.host_id or "")
        return current


def find_cycle(templates: dict[str, NodeTemplate]) -> list[str]:
    """A cycle of relationships as [a, b, ..., a], or [] (a template targets itself too)."""
    done: set[str] = set()
    for start, template in templates.items():
        if start in done:
            continue
        trail: list[str] = [start]
        on_trail = {start}
        stack = [iter(r.target for r in template.relationships)]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                finished = trail.pop()
                on_trail.discard(finished)
                done.add(finished)
                continue
            if target in on_trail:
                return [*trail[trail.index(target) :], target]
            if target in done:
                continue
            trail.append(target)
            on_trail.add(target)
            stack.append(iter(r.target for r in templates[target].relationships))
    return []
