"""`heal`: uninstall then install of one instance and those contained in it, with the
relationships of the others to them undone and established again (docs/lifecycle.md)."""

from __future__ import annotations

from typing import Any

from dalsegno.lifecycle.graphs import add_install, add_uninstall, contained, deployment_of
from dalsegno.lifecycle.steps import RUNNING, Steps
from dalsegno.model.blueprints import NodeInstance
from dalsegno.model.definitions import workflow
from dalsegno.model.errors import NotFoundError


@workflow(resumable=True)
def heal(ctx: Any, instance: str, subgraph_retries: int = 0) -> None:
    """Uninstall (failures ignored) then install `instance` and every instance contained
    in it; the others' links to them run `unlink` first and `establish` again after."""
    deployment = deployment_of(ctx, "heal")
    graph = ctx.graph("heal")
    if not graph.restored:
        _plan(graph, deployment, instance, subgraph_retries)
    graph.execute()


def _plan(graph: Any, deployment: Any, instance_id: str, retries: int) -> None:
    instances: list[NodeInstance] = deployment.instances
    if instance_id not in {instance.id for instance in instances}:
        msg = f"heal: deployment {deployment.id} has no instance {instance_id}"
        raise NotFoundError(msg)
    healed = contained(instances, instance_id)
    ids = {instance.id for instance in healed}
    # the others' links to the healed ones: undone before, established again after
    others = [
        NodeInstance(i.id, i.deployment_id, i.node, i.state, links=linked)
        for i in instances
        if i.id not in ids
        for linked in [tuple(link for link in i.links if link.target_id in ids)]
        if linked
    ]
    down = Steps(deployment.blueprint, deployment.inputs, prefix="uninstall:")
    down.on_failure = "ignore"
    unlinks = [
        task
        for other in others
        if other.state in RUNNING
        for task in down.pair_steps(graph.add, other, "unlink")
    ]
    removed = add_uninstall(graph, down, healed, ignore=True)
    up = Steps(deployment.blueprint, deployment.inputs, prefix="install:")
    added = add_install(graph, up, healed, retries, from_state=False)
    for sub in removed.values():
        if unlinks:
            graph.depend(sub, on=unlinks)
    for sub in added.values():
        if removed:
            graph.depend(sub, on=list(removed.values()))
    for other in others:
        for task in up.pair_steps(graph.add, other, "establish"):
            graph.depend(task, on=list(added.values()))
