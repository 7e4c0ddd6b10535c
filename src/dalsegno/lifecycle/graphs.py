"""Lifecycle graphs: one subgraph per node instance, ordered by the instances' links.

Install: an instance's subgraph starts once the subgraph of every instance it links to
(`depends_on`, `connected_to`, `contained_in`) succeeded, i.e. once those are `started`.
Uninstall: the reverse; an instance goes once every instance linking to it has gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dalsegno.lifecycle.steps import Steps, installed_steps
from dalsegno.model.blueprints import NodeInstance
from dalsegno.model.errors import RefusedError

FULL_INSTALL = 3  # create, configure and start are all done


def deployment_of(ctx: Any, workflow: str) -> Any:
    """`ctx.deployment`, or a clear refusal when the execution has none."""
    if ctx.deployment is None:
        msg = f"{workflow} runs against a deployment: start it with one (-d NAME)"
        raise RefusedError(msg)
    return ctx.deployment


def add_install(
    graph: Any,
    steps: Steps,
    instances: Sequence[NodeInstance],
    retries: int,
    *,
    from_state: bool = True,
) -> dict[str, Any]:
    """The install subgraphs of `instances` (those not already `started` when
    `from_state`: each from the step its state says is next), in link order."""
    subs: dict[str, Any] = {}
    for instance in instances:
        done = installed_steps(instance) if from_state else 0
        if done >= FULL_INSTALL:
            continue
        sub = graph.subgraph(steps.prefix + instance.id, retries=retries)
        sub.sequence(*steps.install(sub.add, instance, done))
        subs[instance.id] = sub
    for instance in instances:
        if instance.id in subs:
            targets = {link.target_id for link in instance.links if link.target_id in subs}
            if targets:
                graph.depend(subs[instance.id], on=[subs[target] for target in sorted(targets)])
    return subs


def add_uninstall(
    graph: Any, steps: Steps, instances: Sequence[NodeInstance], ignore: bool
) -> dict[str, Any]:
    """The uninstall subgraphs of `instances`, in reverse link order."""
    subs: dict[str, Any] = {}
    for instance in instances:
        add = _Lazy(graph, steps.prefix + instance.id, subs, instance.id)
        chain = steps.uninstall(add, instance, ignore)
        if chain:
            subs[instance.id].sequence(*chain)
    linked: dict[str, set[str]] = {}
    for instance in instances:
        if instance.id in subs:
            for link in instance.links:
                if link.target_id in subs:
                    linked.setdefault(link.target_id, set()).add(instance.id)
    for target, sources in linked.items():
        graph.depend(subs[target], on=[subs[source] for source in sorted(sources)])
    return subs


class _Lazy:
    """`sub.add` for a subgraph made at its first task: an instance with nothing to do
    has no (empty) subgraph."""

    def __init__(self, graph: Any, key: str, subs: dict[str, Any], instance_id: str) -> None:
        self._graph, self._key, self._subs, self._id = graph, key, subs, instance_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sub = self._subs.get(self._id)
        if sub is None:
            sub = self._subs[self._id] = self._graph.subgraph(self._key)
        return sub.add(*args, **kwargs)


def contained(instances: Sequence[NodeInstance], root: str) -> list[NodeInstance]:
    """`root` and every instance contained in it, at any depth, in the deployment's order."""
    chosen = {root}
    changed = True
    while changed:
        changed = False
        for instance in instances:
            if instance.host_id in chosen and instance.id not in chosen:
                chosen.add(instance.id)
                changed = True
    return [instance for instance in instances if instance.id in chosen]
