"""`install` and `uninstall` of a deployment (docs/lifecycle.md)."""

from __future__ import annotations

from typing import Any

from dalsegno.lifecycle.graphs import add_install, add_uninstall, deployment_of
from dalsegno.lifecycle.steps import Steps
from dalsegno.model.definitions import workflow


@workflow(resumable=True)
def install(ctx: Any, subgraph_retries: int = 0) -> None:
    """Install every instance not `started` yet, each from the step its state says is
    next, an instance once every instance it links to is `started`. `subgraph_retries`:
    how often an instance's whole install is tried again after a failure."""
    deployment = deployment_of(ctx, "install")
    graph = ctx.graph("install")
    if not graph.restored:  # a resume runs the graph stored: never planned twice
        steps = Steps(deployment.blueprint, deployment.inputs)
        add_install(graph, steps, deployment.instances, subgraph_retries)
    graph.execute()


@workflow(resumable=True)
def uninstall(ctx: Any, ignore_failure: bool = True) -> None:
    """Stop, unlink and delete every instance, an instance once every instance linking to
    it is gone; all end `deleted`. Failures are ignored unless `ignore_failure` is false
    (then the first failure stops what depends on it, and the execution fails)."""
    deployment = deployment_of(ctx, "uninstall")
    graph = ctx.graph("uninstall")
    if not graph.restored:
        steps = Steps(deployment.blueprint, deployment.inputs)
        if ignore_failure:
            steps.on_failure = "ignore"
        add_uninstall(graph, steps, deployment.instances, ignore_failure)
    graph.execute()
