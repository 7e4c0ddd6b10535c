"""`plan_scale`: what scaling one template of a deployment by ±N adds or removes.

Up: N new instances of the template, each with the instances contained in it (their own
counts per host), linked to their targets among all the deployment's instances by the
rules of `plan.py`; existing instances whose relationships reach the new ones gain links
(`new_links`: their `establish` runs for the new pairs). Down: the N newest instances, each
with the instances contained in it; the remaining instances lose their links to them
(`dropped_links`: their `unlink` runs). A template contained in another is scaled through
its container.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dalsegno.blueprints.plan import Scope, fill_links, grow, install_order
from dalsegno.model.blueprints import Blueprint, InstanceLink, NodeInstance
from dalsegno.model.errors import BlueprintError


@dataclass(frozen=True)
class ScalePlan:
    """What a scale changes. `added` in install order; `removed` in uninstall order (the
    newest first, each instance after those contained in it)."""

    added: list[NodeInstance] = field(default_factory=list)
    removed: list[NodeInstance] = field(default_factory=list)
    new_links: dict[str, list[InstanceLink]] = field(default_factory=dict)
    dropped_links: dict[str, list[InstanceLink]] = field(default_factory=dict)
    count: int = 0  # the template's instances after the scale


def plan_scale(
    blueprint: Blueprint,
    deployment_id: str,
    inputs: Mapping[str, Any],
    existing: Sequence[NodeInstance],
    node: str,
    delta: int,
) -> ScalePlan:
    """The instances to add (delta > 0) or remove (delta < 0) to scale `node` by `delta`."""
    template = blueprint.node_templates.get(node)
    if template is None:
        known = ", ".join(blueprint.node_templates)
        msg = f"scale: no node template {node!r} (templates: {known})"
        raise BlueprintError(msg)
    if template.container is not None:
        msg = (
            f"scale: {node!r} is contained in {template.container!r}: scale"
            f" {template.container!r} instead (each of its instances holds its own)"
        )
        raise BlueprintError(msg)
    if isinstance(delta, bool) or not isinstance(delta, int):
        msg = f"scale: delta must be a whole number, not {delta!r}"
        raise BlueprintError(msg)
    current = [instance for instance in existing if instance.node == node]
    if len(current) + delta < 0:
        msg = (
            f"scale: {node!r} has {len(current)} instance(s): it cannot lose {-delta}"
            " (the count would go below 0)"
        )
        raise BlueprintError(msg)
    count = len(current) + delta
    if delta > 0:
        return _scale_up(blueprint, deployment_id, inputs, existing, node, delta, count)
    if delta < 0:
        return _scale_down(existing, current, -delta, count)
    return ScalePlan(count=count)


def _scale_up(
    blueprint: Blueprint,
    deployment_id: str,
    inputs: Mapping[str, Any],
    existing: Sequence[NodeInstance],
    node: str,
    delta: int,
    count: int,
) -> ScalePlan:
    used = {instance.id for instance in existing}
    templates = blueprint.node_templates
    made: dict[str, list[NodeInstance]] = {node: []}
    added: list[NodeInstance] = []
    for name in install_order(blueprint):
        template = templates[name]
        if name == node:
            made[name] = grow(template, deployment_id, inputs, [None], used, count=delta)
        elif template.container in made:
            made[name] = grow(template, deployment_id, inputs, made[template.container], used)
        else:
            continue
        added.extend(made[name])
    everyone = [*existing, *added]
    fill_links(blueprint, added, everyone)
    added_ids = {instance.id for instance in added}
    scope = Scope(blueprint, everyone)
    new_links: dict[str, list[InstanceLink]] = {}
    for instance in existing:
        gained = [link for link in scope.links_of(instance) if link.target_id in added_ids]
        if gained:
            new_links[instance.id] = gained
    return ScalePlan(added=added, new_links=new_links, count=count)


def _scale_down(
    existing: Sequence[NodeInstance], current: list[NodeInstance], lose: int, count: int
) -> ScalePlan:
    position = {instance.id: index for index, instance in enumerate(existing)}
    newest = sorted(current, key=lambda i: (i.created_at, position[i.id]), reverse=True)
    held: dict[str, list[NodeInstance]] = {}
    for instance in existing:
        if instance.host_id is not None:
            held.setdefault(instance.host_id, []).append(instance)
    removed: list[NodeInstance] = []
    for instance in newest[:lose]:
        removed.extend(_contained_first(instance, held))
    removed_ids = {instance.id for instance in removed}
    dropped: dict[str, list[InstanceLink]] = {}
    for instance in existing:
        if instance.id in removed_ids:
            continue
        lost = [link for link in instance.links if link.target_id in removed_ids]
        if lost:
            dropped[instance.id] = lost
    return ScalePlan(removed=removed, dropped_links=dropped, count=count)


def _contained_first(
    instance: NodeInstance, held: dict[str, list[NodeInstance]]
) -> list[NodeInstance]:
    """`instance` after every instance contained in it, the deepest first."""
    ordered: list[NodeInstance] = []
    for inner in reversed(held.get(instance.id, [])):
        ordered.extend(_contained_first(inner, held))
    ordered.append(instance)
    return ordered
