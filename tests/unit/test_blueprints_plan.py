"""Planning node instances: counts, ids, hosts, links and install order of a new
deployment, and what a scale adds, removes, links and unlinks (docs/blueprints.md)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from dalsegno.blueprints import (
    install_order,
    parse_blueprint,
    plan_instances,
    plan_scale,
    resolve_inputs,
    resolve_outputs,
)
from dalsegno.model.blueprints import Blueprint, InstanceLink, InstanceState, NodeInstance
from dalsegno.model.errors import BlueprintError

EXAMPLE = Path(__file__).parents[2] / "examples" / "blueprints" / "three_tier.yaml"


@pytest.fixture
def three_tier() -> Blueprint:
    return parse_blueprint(EXAMPLE.read_text(), base_dir=EXAMPLE.parent)


def by_node(instances: list[NodeInstance]) -> dict[str, list[NodeInstance]]:
    found: dict[str, list[NodeInstance]] = {}
    for instance in instances:
        found.setdefault(instance.node, []).append(instance)
    return found


def targets(instance: NodeInstance, kind: str) -> set[str]:
    return {link.target_id for link in instance.links if link.type == kind}


def assert_targets_first(instances: list[NodeInstance]) -> None:
    position = {instance.id: index for index, instance in enumerate(instances)}
    for instance in instances:
        for link in instance.links:
            assert position[link.target_id] < position[instance.id], (instance.id, link)


def test_the_example_plans_its_instances_hosts_and_links(three_tier: Blueprint) -> None:
    inputs = resolve_inputs(three_tier, {})
    planned = plan_instances(three_tier, "shop", inputs)
    nodes = by_node(planned)
    counts = {node: len(found) for node, found in nodes.items()}
    assert counts == {
        "network": 1,
        "db_vm": 1,
        "app_vm": 2,
        "database": 1,
        "app": 2,
        "load_balancer": 1,
    }
    assert len({instance.id for instance in planned}) == len(planned)
    for instance in planned:
        assert re.fullmatch(rf"{instance.node}_[0-9a-f]{{6}}", instance.id)
        assert instance.deployment_id == "shop"
        assert instance.state is InstanceState.UNINITIALIZED
        assert instance.runtime_properties == {}
    (network,) = nodes["network"]
    (db_vm,) = nodes["db_vm"]
    (database,) = nodes["database"]
    (lb,) = nodes["load_balancer"]
    assert database.host_id == db_vm.id
    assert targets(database, "contained_in") == {db_vm.id}
    # an app on each app VM, each connected to the one database
    assert sorted(app.host_id or "" for app in nodes["app"]) == sorted(
        vm.id for vm in nodes["app_vm"]
    )
    for app in nodes["app"]:
        assert targets(app, "contained_in") == {app.host_id}
        assert targets(app, "connected_to") == {database.id}
        assert app.links[0] == InstanceLink("contained_in", "app_vm", app.host_id or "")
    for vm in [db_vm, *nodes["app_vm"]]:
        assert vm.host_id is None
        assert vm.links == (InstanceLink("depends_on", "network", network.id),)
    assert targets(lb, "connected_to") == {app.id for app in nodes["app"]}
    assert targets(lb, "depends_on") == {network.id}
    assert_targets_first(planned)


def test_instance_counts_follow_the_inputs(three_tier: Blueprint) -> None:
    inputs = resolve_inputs(three_tier, {"app_vms": 20})
    planned = plan_instances(three_tier, "big", inputs)
    assert len(planned) == 1 + 1 + 20 + 1 + 20 + 1
    assert len(by_node(planned)["load_balancer"][0].links) == 1 + 20
    empty = plan_instances(three_tier, "none", resolve_inputs(three_tier, {"app_vms": 0}))
    assert "app" not in by_node(empty)
    assert len(by_node(empty)["load_balancer"][0].links) == 1


def test_install_order_puts_targets_first_in_file_order_where_free() -> None:
    blueprint = parse_blueprint(
        textwrap.dedent(
            """\
            node_templates:
              lb:
                type: t
                relationships: [{type: connected_to, target: web}]
              web:
                type: t
                relationships: [{type: contained_in, target: host}]
              host: {type: t}
              solo: {type: t}
            """
        )
    )
    assert install_order(blueprint) == ["host", "web", "lb", "solo"]
    assert_targets_first(plan_instances(blueprint, "d", {}))


NESTED = """\
inputs:
  hosts: {type: integer, default: 2}
node_templates:
  host:
    type: t
    instances: {get_input: hosts}
  box:
    type: t
    instances: 2
    relationships: [{type: contained_in, target: host}]
  web:
    type: t
    relationships:
      - {type: contained_in, target: box}
      - {type: connected_to, target: cache}
      - {type: depends_on, target: shared}
  cache:
    type: t
    relationships: [{type: contained_in, target: host}]
  shared: {type: t}
"""


@pytest.fixture
def nested() -> Blueprint:
    return parse_blueprint(NESTED)


def test_contained_templates_multiply_and_links_stay_under_one_host(nested: Blueprint) -> None:
    planned = plan_instances(nested, "d", resolve_inputs(nested, {}))
    nodes = by_node(planned)
    assert {node: len(found) for node, found in nodes.items()} == {
        "host": 2,
        "box": 4,
        "web": 4,
        "cache": 2,
        "shared": 1,
    }
    boxes = {box.id: box for box in nodes["box"]}
    for host in nodes["host"]:
        assert sum(1 for box in boxes.values() if box.host_id == host.id) == 2
    caches = {cache.host_id: cache.id for cache in nodes["cache"]}
    for web in nodes["web"]:
        host_id = boxes[web.host_id or ""].host_id
        # web and cache share the host template: web reaches its own host's cache only
        assert targets(web, "connected_to") == {caches[host_id]}
        # shared is in no container: every web reaches it
        assert targets(web, "depends_on") == {nodes["shared"][0].id}
    assert_targets_first(planned)


def test_scale_up_adds_instances_with_their_contained_ones_and_new_links(
    three_tier: Blueprint,
) -> None:
    inputs = resolve_inputs(three_tier, {})
    existing = plan_instances(three_tier, "shop", inputs)
    plan = plan_scale(three_tier, "shop", inputs, existing, "app_vm", 2)
    added = by_node(plan.added)
    assert {node: len(found) for node, found in added.items()} == {"app_vm": 2, "app": 2}
    assert plan.count == 4
    assert plan.removed == []
    assert plan.dropped_links == {}
    old_ids = {instance.id for instance in existing}
    assert not old_ids & {instance.id for instance in plan.added}
    nodes = by_node(existing)
    (network,) = nodes["network"]
    (database,) = nodes["database"]
    (lb,) = nodes["load_balancer"]
    new_vm_ids = {vm.id for vm in added["app_vm"]}
    for vm in added["app_vm"]:
        assert vm.links == (InstanceLink("depends_on", "network", network.id),)
    for app in added["app"]:
        assert app.host_id in new_vm_ids
        assert targets(app, "connected_to") == {database.id}
    # the load balancer gains the two new apps, and nothing else
    assert plan.new_links == {
        lb.id: [InstanceLink("connected_to", "app", app.id) for app in added["app"]]
    }
    assert_targets_first([*existing, *plan.added])


def test_scale_down_removes_the_newest_with_their_contained_ones(
    three_tier: Blueprint,
) -> None:
    inputs = resolve_inputs(three_tier, {"app_vms": 3})
    existing = plan_instances(three_tier, "shop", inputs)
    vms = by_node(existing)["app_vm"]
    for age, vm in enumerate(vms):
        vm.created_at = 100.0 - age  # the first planned is the newest here
    plan = plan_scale(three_tier, "shop", inputs, existing, "app_vm", -2)
    apps_on = {app.host_id: app for app in by_node(existing)["app"]}
    assert [instance.id for instance in plan.removed] == [
        apps_on[vms[0].id].id,
        vms[0].id,
        apps_on[vms[1].id].id,
        vms[1].id,
    ]
    assert plan.count == 1
    assert plan.added == []
    assert plan.new_links == {}
    (lb,) = by_node(existing)["load_balancer"]
    assert plan.dropped_links == {
        lb.id: [
            InstanceLink("connected_to", "app", apps_on[vms[0].id].id),
            InstanceLink("connected_to", "app", apps_on[vms[1].id].id),
        ]
    }


def test_scale_down_without_times_takes_the_last_listed(three_tier: Blueprint) -> None:
    inputs = resolve_inputs(three_tier, {})
    existing = plan_instances(three_tier, "shop", inputs)
    plan = plan_scale(three_tier, "shop", inputs, existing, "load_balancer", -1)
    assert [instance.node for instance in plan.removed] == ["load_balancer"]
    assert plan.dropped_links == {}  # nothing has a relationship to the load balancer
    assert plan.count == 0
    vms = by_node(existing)["app_vm"]
    assert plan_scale(three_tier, "shop", inputs, existing, "app_vm", -1).removed[-1] is vms[-1]


def test_scale_by_zero_changes_nothing(three_tier: Blueprint) -> None:
    inputs = resolve_inputs(three_tier, {})
    existing = plan_instances(three_tier, "shop", inputs)
    plan = plan_scale(three_tier, "shop", inputs, existing, "app_vm", 0)
    assert (plan.added, plan.removed, plan.new_links, plan.dropped_links, plan.count) == (
        [],
        [],
        {},
        {},
        2,
    )


@pytest.mark.parametrize(
    ("node", "delta", "expected"),
    [
        (
            "app_vm",
            -3,
            "scale: 'app_vm' has 2 instance(s): it cannot lose 3 (the count would go below 0)",
        ),
        (
            "app",
            1,
            "scale: 'app' is contained in 'app_vm': scale 'app_vm' instead (each of its"
            " instances holds its own)",
        ),
        (
            "web",
            1,
            "scale: no node template 'web' (templates: network, db_vm, app_vm, database, app,"
            " load_balancer)",
        ),
    ],
)
def test_scale_refusals(three_tier: Blueprint, node: str, delta: int, expected: str) -> None:
    inputs = resolve_inputs(three_tier, {})
    existing = plan_instances(three_tier, "shop", inputs)
    with pytest.raises(BlueprintError) as caught:
        plan_scale(three_tier, "shop", inputs, existing, node, delta)
    assert str(caught.value) == expected


def test_scale_up_under_a_shared_container_links_within_each_host(nested: Blueprint) -> None:
    inputs = resolve_inputs(nested, {})
    existing = plan_instances(nested, "d", inputs)
    plan = plan_scale(nested, "d", inputs, existing, "host", 1)
    added = by_node(plan.added)
    assert {node: len(found) for node, found in added.items()} == {
        "host": 1,
        "box": 2,
        "web": 2,
        "cache": 1,
    }
    (cache,) = added["cache"]
    for web in added["web"]:
        assert targets(web, "connected_to") == {cache.id}
    # the existing webs are under other hosts: the new cache is not theirs
    assert plan.new_links == {}


def test_outputs_read_inputs_and_the_instances_runtime_properties(
    three_tier: Blueprint,
) -> None:
    inputs = resolve_inputs(three_tier, {"app_port": 9000})
    planned = plan_instances(three_tier, "shop", inputs)
    assert resolve_outputs(three_tier, inputs, planned) == {
        "endpoint": {"ip": None, "port": 80},
        "backends": {"ips": [None, None], "port": 9000},
    }
    nodes = by_node(planned)
    nodes["load_balancer"][0].runtime_properties["ip"] = "10.0.0.9"
    for number, app in enumerate(nodes["app"]):
        app.runtime_properties["host_ip"] = f"10.0.1.{number}"
    assert resolve_outputs(three_tier, inputs, planned) == {
        "endpoint": {"ip": "10.0.0.9", "port": 80},
        "backends": {"ips": ["10.0.1.0", "10.0.1.1"], "port": 9000},
    }
    # a template's property stands in for a runtime property not set; no instance: null
    one = resolve_inputs(three_tier, {"app_vms": 1})
    single = plan_instances(three_tier, "one", one)
    blueprint = Blueprint(
        three_tier.inputs,
        three_tier.node_templates,
        outputs={"p": {"value": {"get_attribute": ["app", "port"]}}},
    )
    assert resolve_outputs(blueprint, one, single) == {"p": 8080}
    assert resolve_outputs(blueprint, one, []) == {"p": None}
