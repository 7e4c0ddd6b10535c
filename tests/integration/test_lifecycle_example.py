"""The three-tier example (examples/blueprints/) through the service layer, in process on
a real store (both backends): upload, create, install, scale up and down, heal,
execute_operation, uninstall and delete; what ran is read from the fake cloud's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dalsegno.model.blueprints import InstanceState
from dalsegno.model.errors import BlueprintError, ConflictError, RefusedError
from dalsegno.service.blueprints import BlueprintService
from dalsegno.service.deployments import DeploymentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store.base import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blueprints" / "three_tier.yaml"
S = InstanceState


def ops(cloud: Path) -> list[dict[str, str]]:
    log = cloud / "operations.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run(service: ExecutionService, workflow: str, **params: object) -> None:
    result = service.start(workflow, params, deployment="shop")
    execution = service.find(result.execution_id)
    assert execution.status == "completed", execution.error


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    return tmp_path / "cloud"


def test_the_three_tier_example_from_install_to_delete(
    service: ExecutionService, store: Store, cloud: Path
) -> None:
    blueprints, deployments = BlueprintService(store), DeploymentService(store)
    blueprints.upload_file(EXAMPLE, "three-tier")
    created = deployments.create("shop", "three-tier", {"cloud_dir": str(cloud)})
    assert {i.state for i in created.instances} == {S.UNINITIALIZED}
    apps = [i.id for i in created.instances if i.node == "app_vm"]
    assert len(apps) == 2

    run(service, "install")
    shown = deployments.get("shop")
    assert {i.state for i in shown.instances} == {S.STARTED}
    creates = [entry["instance"] for entry in ops(cloud) if entry["op"] == "create"]
    assert sorted(creates) == sorted(i.id for i in shown.instances)

    run(service, "scale", node="app_vm", delta=1)
    scaled = deployments.get("shop").instances
    assert len([i for i in scaled if i.node == "app_vm"]) == 3
    assert {i.state for i in scaled} == {S.STARTED}
    new = next(i.id for i in scaled if i.node == "app_vm" and i.id not in apps)
    assert any(entry["op"] == "create" and entry["instance"] == new for entry in ops(cloud))

    run(service, "scale", node="app_vm", delta=-1)
    after = deployments.get("shop").instances
    assert new not in {i.id for i in after}
    assert any(entry["op"] == "delete" and entry["instance"] == new for entry in ops(cloud))
    assert all(new not in json.dumps([link.to_json() for link in i.links]) for i in after)

    before = len(ops(cloud))
    run(service, "heal", instance=apps[0])
    healed = [entry for entry in ops(cloud)[before:]]
    assert {entry["op"] for entry in healed if entry["instance"] == apps[0]} >= {
        "create",
        "delete",
    }
    assert {i.state for i in deployments.get("shop").instances} == {S.STARTED}

    with pytest.raises(ConflictError, match="not deleted"):
        deployments.delete("shop")
    with pytest.raises(ConflictError, match="used by deployment shop"):
        blueprints.delete("three-tier")
    run(service, "uninstall")
    assert {i.state for i in deployments.get("shop").instances} == {S.DELETED}
    deployments.delete("shop")
    blueprints.delete("three-tier")
    assert store.list_blueprints() == []


def test_refusals_change_nothing(service: ExecutionService, store: Store, tmp_path: Path) -> None:
    blueprints, deployments = BlueprintService(store), DeploymentService(store)
    with pytest.raises(BlueprintError, match=r"^bad.yaml:\d+: "):
        blueprints.upload("node_templates: [1]\n", "bad", source="bad.yaml")
    assert store.list_blueprints() == []
    blueprints.upload_file(EXAMPLE, "three-tier")
    with pytest.raises(BlueprintError, match="app_vms"):
        deployments.create("shop", "three-tier", {"app_vms": "many"}, from_text=True)
    assert store.list_deployments() == []
    with pytest.raises(RefusedError, match="unknown deployment: nope"):
        service.start("install", {}, deployment="nope")
    deployments.create("shop", "three-tier", {"cloud_dir": str(tmp_path)})
    with pytest.raises(RefusedError, match="takes its lock key"):
        service.start("install", {}, deployment="shop", lock="other")
    assert service.list_executions() == []
