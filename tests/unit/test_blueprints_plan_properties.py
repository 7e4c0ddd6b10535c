"""Planning, checked on random blueprints against a second statement of the link rule:
an instance links to a target instance when, for every template that holds them both
(the target may be that template), they sit in the same instance of it."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from dalsegno.blueprints import plan_instances, plan_scale
from dalsegno.model.blueprints import Blueprint, NodeInstance, NodeTemplate, Relationship


@st.composite
def blueprints(draw: st.DrawFn) -> Blueprint:
    """Templates t0..tn; each may be contained in an earlier one and relate to others."""
    size = draw(st.integers(2, 6))
    templates: dict[str, NodeTemplate] = {}
    for index in range(size):
        name = f"t{index}"
        relationships: list[Relationship] = []
        earlier = list(range(index))
        if earlier and draw(st.booleans()):
            host = draw(st.sampled_from(earlier))
            relationships.append(Relationship("contained_in", f"t{host}"))
            earlier.remove(host)
        for target in draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []:
            kind = draw(st.sampled_from(["depends_on", "connected_to"]))
            relationships.append(Relationship(kind, f"t{target}"))
        count = draw(st.integers(0, 3))
        templates[name] = NodeTemplate(
            name, "t", instances=count, relationships=tuple(relationships)
        )
    return Blueprint(inputs={}, node_templates=templates)


def holders(instance: NodeInstance, by_id: dict[str, NodeInstance]) -> dict[str, str]:
    """Template -> the id of its instance that holds `instance` (itself included)."""
    found = {instance.node: instance.id}
    current = instance
    while current.host_id is not None:
        current = by_id[current.host_id]
        found[current.node] = current.id
    return found


def expected_links(
    blueprint: Blueprint, instances: list[NodeInstance]
) -> dict[str, set[tuple[str, str]]]:
    by_id = {instance.id: instance for instance in instances}
    expected: dict[str, set[tuple[str, str]]] = {}
    for source in instances:
        own = holders(source, by_id)
        del own[source.node]
        links: set[tuple[str, str]] = set()
        for relationship in blueprint.node_templates[source.node].relationships:
            for target in instances:
                if target.node != relationship.target:
                    continue
                if relationship.type == "contained_in":
                    if target.id == source.host_id:
                        links.add(("contained_in", target.id))
                    continue
                theirs = holders(target, by_id)
                if all(own[node] == theirs[node] for node in own.keys() & theirs.keys()):
                    links.add((relationship.type, target.id))
        expected[source.id] = links
    return expected


def actual_links(instances: list[NodeInstance]) -> dict[str, set[tuple[str, str]]]:
    return {i.id: {(link.type, link.target_id) for link in i.links} for i in instances}


def expected_counts(blueprint: Blueprint, own: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, template in blueprint.node_templates.items():  # containers come first
        per_host = own.get(name, template.instances)
        assert isinstance(per_host, int)
        container = template.container
        counts[name] = per_host * (counts[container] if container else 1)
    return counts


@settings(max_examples=150, deadline=None)
@given(blueprints())
def test_planned_instances_follow_the_counts_and_the_link_rule(blueprint: Blueprint) -> None:
    planned = plan_instances(blueprint, "d", {})
    counts = Counter(instance.node for instance in planned)
    assert {n: c for n, c in expected_counts(blueprint, {}).items() if c} == dict(counts)
    assert len({instance.id for instance in planned}) == len(planned)
    assert actual_links(planned) == expected_links(blueprint, planned)
    position = {instance.id: index for index, instance in enumerate(planned)}
    for instance in planned:
        for link in instance.links:
            assert position[link.target_id] < position[instance.id]


@settings(max_examples=150, deadline=None)
@given(blueprints(), st.data())
def test_a_scale_gives_what_planning_the_new_count_would(
    blueprint: Blueprint, data: st.DataObject
) -> None:
    planned = plan_instances(blueprint, "d", {})
    roots = [name for name, t in blueprint.node_templates.items() if t.container is None]
    node = data.draw(st.sampled_from(roots))
    have = sum(1 for instance in planned if instance.node == node)
    delta = data.draw(st.integers(-have, 3))
    plan = plan_scale(blueprint, "d", {}, planned, node, delta)
    assert plan.count == have + delta
    removed = {instance.id for instance in plan.removed}
    after = [i for i in planned if i.id not in removed] + plan.added
    counts = Counter(instance.node for instance in after)
    want = expected_counts(blueprint, {node: have + delta})
    assert {n: c for n, c in want.items() if c} == dict(counts)
    # nothing removed is left holding or held by something kept
    for instance in after:
        assert instance.host_id not in removed
    # every kept instance's links, changed by the plan, are the rule's links on `after`
    links = actual_links(after)
    for instance_id, gained in plan.new_links.items():
        links[instance_id] |= {(link.type, link.target_id) for link in gained}
    for instance_id, lost in plan.dropped_links.items():
        assert all(link.target_id in removed for link in lost)
        links[instance_id] -= {(link.type, link.target_id) for link in lost}
    assert links == expected_links(blueprint, after)
    assert not (plan.added and plan.removed)
