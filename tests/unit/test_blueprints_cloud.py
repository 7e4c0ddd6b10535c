"""The fake cloud of the three-tier example, on a stand-in of the operation context: its
files, its runtime properties, its operations log and its resume marks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from dalsegno.model.definitions import operation_definition

CLOUD = Path(__file__).parents[2] / "examples" / "blueprints" / "cloud.py"


@pytest.fixture(scope="module")
def cloud() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fake_cloud_example", CLOUD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def side(node: str, instance_id: str, node_type: str = "cloud.vm") -> SimpleNamespace:
    return SimpleNamespace(
        node=SimpleNamespace(name=node, type=node_type, properties={"size": "small"}),
        instance=SimpleNamespace(id=instance_id, state="uninitialized", runtime_properties={}),
    )


def context(root: Path, own: SimpleNamespace, **pair: SimpleNamespace) -> Any:
    return SimpleNamespace(
        node=own.node,
        instance=own.instance,
        deployment=SimpleNamespace(id="shop", inputs={"cloud_dir": str(root)}),
        **pair,
    )


def log(root: Path) -> list[dict[str, Any]]:
    lines = (root / "operations.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_create_and_delete_are_not_resumable_the_rest_are(cloud: ModuleType) -> None:
    marks = {
        name: operation_definition(getattr(cloud, name))
        for name in ("create", "configure", "start", "stop", "delete", "host_on", "link")
    }
    assert {name: mark.resumable for name, mark in marks.items() if mark} == {
        "create": False,
        "configure": True,
        "start": True,
        "stop": True,
        "delete": False,
        "host_on": True,
        "link": True,
    }


def test_a_node_lifecycle_writes_and_removes_its_resource(
    cloud: ModuleType, tmp_path: Path
) -> None:
    vm = side("app_vm", "app_vm_0a0b0c")
    ctx = context(tmp_path, vm)
    resource = tmp_path / "shop" / "app_vm_0a0b0c.json"
    cloud.create(ctx, ip=True)
    assert json.loads(resource.read_text())["state"] == "created"
    ip = vm.instance.runtime_properties["ip"]
    assert ip.startswith("10.")
    cloud.configure(ctx, port=8080)
    cloud.start(ctx)
    assert json.loads(resource.read_text())["state"] == "started"
    assert vm.instance.runtime_properties["configured_with"] == {"port": 8080}
    cloud.stop(ctx)
    assert json.loads(resource.read_text())["state"] == "stopped"
    assert cloud.delete(ctx)["absent"] is False
    assert not resource.exists()
    assert "ip" not in vm.instance.runtime_properties
    entries = log(tmp_path)
    assert [entry["op"] for entry in entries] == [
        "create",
        "configure",
        "start",
        "stop",
        "delete",
    ]
    for entry in entries:
        assert entry["instance"] == "app_vm_0a0b0c"
        assert entry["node"] == "app_vm"
        assert entry["deployment"] == "shop"
        assert isinstance(entry["pid"], int)
        assert isinstance(entry["time"], float)


def test_stop_and_delete_of_a_resource_never_made_succeed(
    cloud: ModuleType, tmp_path: Path
) -> None:
    ctx = context(tmp_path, side("app", "app_111111", "app.web"))
    assert cloud.stop(ctx)["absent"] is True
    assert cloud.delete(ctx)["absent"] is True


def test_relationship_operations_link_the_pair(cloud: ModuleType, tmp_path: Path) -> None:
    vm = side("app_vm", "app_vm_aaaaaa")
    cloud.create(context(tmp_path, vm), ip=True)
    app = side("app", "app_bbbbbb", "app.web")
    cloud.host_on(context(tmp_path, app, source=app, target=vm))
    assert app.instance.runtime_properties["host_ip"] == vm.instance.runtime_properties["ip"]
    lb = side("load_balancer", "load_balancer_cccccc", "cloud.load_balancer")
    pair = context(tmp_path, lb, source=lb, target=app)
    cloud.link(pair, role="backend")
    link_file = tmp_path / "shop" / "links" / "load_balancer_cccccc--app_bbbbbb.json"
    assert (
        json.loads(link_file.read_text())["target_ip"] == app.instance.runtime_properties["host_ip"]
    )
    assert lb.instance.runtime_properties["backends"] == {
        "app_bbbbbb": app.instance.runtime_properties["host_ip"]
    }
    cloud.unlink(pair, role="backend")
    assert not link_file.exists()
    assert lb.instance.runtime_properties["backends"] == {}
    entries = log(tmp_path)
    assert [(e["op"], e.get("source"), e.get("target")) for e in entries[1:]] == [
        ("preconfigure", "app_bbbbbb", "app_vm_aaaaaa"),
        ("establish", "load_balancer_cccccc", "app_bbbbbb"),
        ("unlink", "load_balancer_cccccc", "app_bbbbbb"),
    ]


def test_the_cloud_directory_comes_from_the_environment_without_an_input(
    cloud: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DALSEGNO_FAKE_CLOUD", str(tmp_path / "env-cloud"))
    own = side("network", "network_dddddd", "cloud.network")
    ctx = SimpleNamespace(
        node=own.node, instance=own.instance, deployment=SimpleNamespace(id="d", inputs={})
    )
    cloud.create(ctx)
    assert (tmp_path / "env-cloud" / "d" / "network_dddddd.json").is_file()
    assert len(log(tmp_path / "env-cloud")) == 1
