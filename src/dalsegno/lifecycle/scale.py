"""`scale`: add or remove instances of a node template (docs/lifecycle.md).

The plan (`dalsegno.blueprints.plan_scale`: new ids are random) is made once and stored as
the result of a first task, so a resume reads the same plan back; the added instances are
stored in one transaction (at most once: the plan names them), then installed with their
new relationships established; removed ones are uninstalled (their links unlinked first)
and, once the graph ended, removed from the deployment with the links to them.
"""

from __future__ import annotations

from typing import Any

from dalsegno.blueprints import ScalePlan, plan_scale
from dalsegno.lifecycle.graphs import add_install, add_uninstall, deployment_of
from dalsegno.lifecycle.operations import ECHO
from dalsegno.lifecycle.steps import RUNNING, Steps
from dalsegno.model.blueprints import InstanceLink, NodeInstance
from dalsegno.model.definitions import workflow


@workflow(resumable=True)
def scale(ctx: Any, node: str, delta: int, subgraph_retries: int = 0) -> None:
    """Scale `node` by `delta` (+N adds N instances with those contained in them, -N
    removes the N newest); a node contained in another is scaled through its container."""
    deployment = deployment_of(ctx, "scale")
    planned = ctx.graph("scale-plan")
    if not planned.restored:
        made = plan_scale(
            deployment.blueprint,
            deployment.id,
            deployment.inputs,
            deployment.instances,
            node,
            delta,
        )
        planned.add(ECHO, key="plan", value=_plan_json(made))
    plan = _plan_of(planned.execute()["plan"])
    existing = {instance.id: instance for instance in deployment.instances}
    if plan.added and plan.added[0].id not in existing:  # stored together, or not at all
        deployment.change_instances(added=plan.added, new_links=plan.new_links)
    graph = ctx.graph("scale")
    if not graph.restored:
        steps = Steps(deployment.blueprint, deployment.inputs)
        _up(graph, steps, plan, existing, subgraph_retries)
        _down(graph, steps, plan, existing)
    graph.execute()
    if plan.removed:
        deployment.change_instances(
            removed=[instance.id for instance in plan.removed], dropped_links=plan.dropped_links
        )


def _up(
    graph: Any, steps: Steps, plan: ScalePlan, existing: dict[str, NodeInstance], retries: int
) -> None:
    subs = add_install(graph, steps, plan.added, retries, from_state=False)
    for instance_id, links in plan.new_links.items():
        source = existing[instance_id]
        gained = NodeInstance(source.id, source.deployment_id, source.node, links=tuple(links))
        for task in steps.pair_steps(graph.add, gained, "establish"):
            targets = sorted({link.target_id for link in links} & set(subs))
            graph.depend(task, on=[subs[target] for target in targets])


def _down(graph: Any, steps: Steps, plan: ScalePlan, existing: dict[str, NodeInstance]) -> None:
    down = Steps(steps.blueprint, steps.inputs)
    down.on_failure = "ignore"
    unlinks = []
    for instance_id, links in plan.dropped_links.items():
        source = existing[instance_id]
        if source.state in RUNNING:
            losing = NodeInstance(source.id, source.deployment_id, source.node, links=tuple(links))
            unlinks += down.pair_steps(graph.add, losing, "unlink")
    current = [existing.get(instance.id, instance) for instance in plan.removed]
    subs = add_uninstall(graph, down, current, ignore=True)
    if unlinks:
        for sub in subs.values():
            graph.depend(sub, on=unlinks)


def _instance_json(instance: NodeInstance) -> dict[str, Any]:
    return {
        "id": instance.id,
        "node": instance.node,
        "links": [link.to_json() for link in instance.links],
        "host_id": instance.host_id,
    }


def _links_json(links: dict[str, list[InstanceLink]]) -> dict[str, Any]:
    return {key: [link.to_json() for link in value] for key, value in links.items()}


def _plan_json(plan: ScalePlan) -> dict[str, Any]:
    return {
        "added": [_instance_json(instance) for instance in plan.added],
        "removed": [_instance_json(instance) for instance in plan.removed],
        "new_links": _links_json(plan.new_links),
        "dropped_links": _links_json(plan.dropped_links),
        "count": plan.count,
    }


def _plan_of(data: dict[str, Any]) -> ScalePlan:
    def instances(items: list[dict[str, Any]]) -> list[NodeInstance]:
        return [
            NodeInstance(
                item["id"],
                "",
                item["node"],
                links=tuple(InstanceLink.from_json(link) for link in item["links"]),
                host_id=item["host_id"],
            )
            for item in items
        ]

    def links(items: dict[str, Any]) -> dict[str, list[InstanceLink]]:
        return {
            key: [InstanceLink.from_json(link) for link in value] for key, value in items.items()
        }

    return ScalePlan(
        added=instances(data["added"]),
        removed=instances(data["removed"]),
        new_links=links(data["new_links"]),
        dropped_links=links(data["dropped_links"]),
        count=data["count"],
    )
