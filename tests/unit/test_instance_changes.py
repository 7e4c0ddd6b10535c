"""What a lifecycle operation changed of its instances (dalsegno.engine.instances): the
keys set and removed, the state its success sets, and what is refused."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from dalsegno.engine.instances import attach, changes, changes_json, reported_changes
from dalsegno.model.records import InstanceChange


class Ctx:
    deployment: Any
    instance: Any
    node: Any
    source: Any
    target: Any


def view(**binding: str) -> dict[str, Any]:
    def item(key: str, node: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {"id": key, "node": node, "state": "created", "runtime_properties": properties,
                "host_id": None}  # fmt: skip

    return {
        "binding": binding,
        "deployment": {"id": "d", "blueprint_id": "b", "inputs": {"size": 2}},
        "instances": {
            "lb_1": item("lb_1", "lb", {"peers": {}, "old": 1}),
            "app_1": item("app_1", "app", {"ip": "10.0.0.1"}),
        },
        "nodes": {
            "lb": {"name": "lb", "type": "t.lb", "properties": {"port": 80}},
            "app": {"name": "app", "type": "t.app", "properties": {}},
        },
    }


def test_the_keys_set_and_removed_and_the_success_state() -> None:
    seen = view(instance="lb_1", source="lb_1", target="app_1", success="configured")
    ctx = Ctx()
    views = attach(ctx, seen)
    assert (ctx.node.name, ctx.node.properties, ctx.deployment.inputs) == (
        "lb",
        {"port": 80},
        {"size": 2},
    )
    assert ctx.instance is ctx.source.instance
    ctx.instance.runtime_properties["peers"] = {
        "app_1": ctx.target.instance.runtime_properties["ip"]
    }
    del ctx.instance.runtime_properties["old"]
    assert changes(seen, views) == [
        InstanceChange("lb_1", "configured", {"peers": {"app_1": "10.0.0.1"}}, ["old"])
    ]
    assert seen["instances"]["lb_1"]["runtime_properties"] == {"peers": {}, "old": 1}  # a copy


def test_an_unchanged_pair_side_is_not_written() -> None:
    seen = view(instance="app_1", source="lb_1", target="app_1")
    views = attach(Ctx(), seen)
    assert changes(seen, views) == []


def test_runtime_properties_that_are_no_dict_are_refused() -> None:
    seen = view(instance="app_1")
    ctx = Ctx()
    views = attach(ctx, seen)
    ctx.instance.runtime_properties = [1]
    with pytest.raises(ValueError, match="runtime properties of app_1 must be a dict, not list"):
        changes(seen, views)


@pytest.mark.parametrize(("value", "error"), [(math.nan, ValueError), (object(), TypeError)])
def test_runtime_properties_that_are_not_json_are_refused(value: Any, error: type) -> None:
    seen = view(instance="app_1")
    ctx = Ctx()
    views = attach(ctx, seen)
    ctx.instance.runtime_properties["x"] = value
    with pytest.raises(error):
        changes(seen, views)


def test_an_agent_s_reported_changes_are_kept_to_the_task_s_instances() -> None:
    """The owner's side of a lifecycle task run on an agent (`reported_changes`): the
    changes its result carries, the success state taken from the task's binding."""
    binding = json.dumps({"instance": "lb_1", "source": "lb_1", "target": "app_1",
                          "success": "configured"})  # fmt: skip
    ctx = Ctx()
    found_view = view(instance="lb_1", source="lb_1", target="app_1", success="configured")
    views = attach(ctx, found_view)
    ctx.instance.runtime_properties["peers"]["app_1"] = "10.0.0.1"
    ctx.target.instance.runtime_properties["seen_by"] = "lb_1"
    reported = changes_json(changes(found_view, views))
    reported[0]["state"] = "deleted"  # an agent's word on the state does not count
    assert reported_changes(binding, json.dumps(reported)) == [
        InstanceChange("lb_1", "configured", {"peers": {"app_1": "10.0.0.1"}}, []),
        InstanceChange("app_1", None, {"seen_by": "lb_1"}, []),
    ]
    # a result without changes (an agent of an earlier release) still sets the state
    assert reported_changes(binding, None) == [InstanceChange("lb_1", "configured")]
    other = [{"instance_id": "db_9", "state": None, "set": {"x": 1}, "unset": []}]
    with pytest.raises(ValueError, match="db_9, not an instance of the task"):
        reported_changes(binding, json.dumps(other))
    with pytest.raises(ValueError, match="bad instance changes"):
        reported_changes(binding, json.dumps([{"set": {}}]))
