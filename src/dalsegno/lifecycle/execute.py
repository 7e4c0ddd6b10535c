"""`execute_operation`: one operation on chosen instances (docs/lifecycle.md)."""

from __future__ import annotations

from typing import Any

from dalsegno.lifecycle.graphs import deployment_of
from dalsegno.lifecycle.steps import Steps
from dalsegno.model.blueprints import InstanceBinding
from dalsegno.model.definitions import workflow
from dalsegno.model.errors import RefusedError


@workflow(resumable=True)
def execute_operation(
    ctx: Any,
    operation: str,
    node: str | None = None,
    instances: list[str] | None = None,
    run_by_dependency_order: bool = False,
) -> None:
    """Run `operation` (a node operation of the templates, e.g. `start` or one of their
    own) on every instance of `node`, or on `instances`, or on all that have it: in
    relationship order (`run_by_dependency_order`) or all at once. States are kept; the
    runtime properties the operation changes are stored with each success."""
    deployment = deployment_of(ctx, "execute_operation")
    graph = ctx.graph("execute_operation")
    if not graph.restored:
        _plan(graph, deployment, operation, node, instances, run_by_dependency_order)
    graph.execute()


def _plan(
    graph: Any,
    deployment: Any,
    operation: str,
    node: str | None,
    wanted: list[str] | None,
    ordered: bool,
) -> None:
    blueprint = deployment.blueprint
    if node is not None and node not in blueprint.node_templates:
        msg = f"execute_operation: no node template {node!r}"
        raise RefusedError(msg)
    every = deployment.instances
    unknown = sorted(set(wanted or ()) - {instance.id for instance in every})
    if unknown:
        msg = f"execute_operation: deployment {deployment.id} has no instance {unknown[0]}"
        raise RefusedError(msg)
    chosen = [
        instance
        for instance in every
        if (node is None or instance.node == node)
        and (wanted is None or instance.id in wanted)
        and operation in blueprint.node_templates[instance.node].operations
    ]
    if not chosen:
        msg = f"execute_operation: no chosen instance has an operation {operation!r}"
        raise RefusedError(msg)
    steps = Steps(blueprint, deployment.inputs)
    tasks = {}
    for instance in chosen:
        spec = blueprint.node_templates[instance.node].operations[operation]
        key = f"{instance.id}.{operation}"
        tasks[instance.id] = steps.task(
            graph.add, key, spec, InstanceBinding(instance.id), instance.node
        )
    if ordered:
        for instance in chosen:
            targets = sorted({link.target_id for link in instance.links} & set(tasks))
            if targets:
                graph.depend(tasks[instance.id], on=[tasks[target] for target in targets])
