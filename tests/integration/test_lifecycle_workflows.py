"""The built-in lifecycle workflows in process, on a real store (both backends): install,
uninstall, heal and execute_operation of a small deployment, the states and runtime
properties they leave, and the order of the operations in their own log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dalsegno.model.blueprints import InstanceState
from dalsegno.model.errors import ConflictError, RefusedError
from dalsegno.service.deployments import DeploymentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store.base import Store

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
sys.path.insert(0, str(WORKFLOWS))

import deploy_kit  # noqa: E402

S = InstanceState


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "operations.log"


@pytest.fixture
def deployments(store: Store, log: Path) -> DeploymentService:
    store.put_blueprint("tiers", "(built in the test)", deploy_kit.blueprint())
    service = DeploymentService(store)
    service.create_planned("d", "tiers", {"log": str(log)}, deploy_kit.instances("d"))
    return service


def states(deployments: DeploymentService) -> dict[str, str]:
    return {i.id: i.state.value for i in deployments.get("d").instances}


def run(service: ExecutionService, workflow: str, **params: object) -> str:
    result = service.start(workflow, params, deployment="d")
    execution = service.find(result.execution_id)
    assert execution.status == "completed", execution.error
    assert execution.deployment_id == "d"
    assert execution.lock_key == "deployment:d"
    return execution.id


def test_install_then_uninstall(
    service: ExecutionService, deployments: DeploymentService, log: Path
) -> None:
    run(service, "install")
    found = {i.id: i for i in deployments.get("d").instances}
    assert {i.state for i in found.values()} == {S.STARTED}
    vm = found["vm_000001"].runtime_properties
    assert vm == {
        "address": "10.0.0.9",
        "node": "vm",
        "configured_in": "d",
        "running": True,
        "peers": {"net_000000": "10.0.0.10"},
    }
    assert found["lb_000000"].runtime_properties["peers"] == {
        "app_000001": "10.0.0.10",
        "app_000002": "10.0.0.10",
    }
    deploy_kit.check_order(log, list(found.values()))
    creates = [line[1] for line in deploy_kit.lines(log) if line[0] == "create"]
    assert sorted(creates) == sorted(found)  # each created once

    with pytest.raises(ConflictError, match="not deleted"):
        deployments.delete("d")
    log.write_text("")
    run(service, "uninstall")
    after = {i.id: i for i in deployments.get("d").instances}
    assert {i.state for i in after.values()} == {S.DELETED}
    assert all(i.runtime_properties == {} for i in after.values())
    seen = deploy_kit.lines(log)
    assert sorted(line[1] for line in seen if line[0] == "delete") == sorted(after)
    assert sorted(tuple(line[1:3]) for line in seen if line[0] == "unlink") == sorted(
        [("lb_000000", "app_000001"), ("lb_000000", "app_000002"),
         ("vm_000001", "net_000000"), ("vm_000002", "net_000000")]
    )  # fmt: skip
    deploy_kit.check_order(log, list(after.values()))
    deployments.delete("d")


def test_an_install_run_again_does_only_what_is_left(
    service: ExecutionService, deployments: DeploymentService, log: Path, store: Store
) -> None:
    from dalsegno.model.records import InstanceChange

    store.update_instances(
        [InstanceChange("net_000000", "started"), InstanceChange("vm_000001", "configured")]
    )
    run(service, "install")
    seen = [" ".join(line[:2]) for line in deploy_kit.lines(log)]
    assert not any(line.endswith("net_000000") and "establish" not in line for line in seen)
    assert "create vm_000001" not in seen
    assert "configure vm_000001" not in seen
    assert "start vm_000001" in seen
    assert set(states(deployments).values()) == {"started"}


def test_execute_operation_and_heal(
    service: ExecutionService, deployments: DeploymentService, log: Path
) -> None:
    run(service, "install")
    log.write_text("")
    run(service, "execute_operation", operation="backup", node="app", run_by_dependency_order=True)
    assert sorted(line[1] for line in deploy_kit.lines(log)) == ["app_000001", "app_000002"]
    found = {i.id: i for i in deployments.get("d").instances}
    assert found["app_000001"].runtime_properties["backup"] == "nightly"
    assert found["app_000001"].state is S.STARTED

    log.write_text("")
    run(service, "heal", instance="vm_000001")
    seen = [" ".join(line[:-1]) for line in deploy_kit.lines(log)]
    assert seen.index("unlink lb_000000 app_000001") < seen.index("stop app_000001")
    assert seen.index("delete app_000001") < seen.index("delete vm_000001")
    assert seen.index("delete vm_000001") < seen.index("create vm_000001")
    assert seen.index("start vm_000001") < seen.index("create app_000001")
    assert seen.index("start app_000001") < seen.index("establish lb_000000 app_000001")
    assert not any("app_000002" in line or "db_" in line for line in seen)
    assert set(states(deployments).values()) == {"started"}
    lb = {i.id: i for i in deployments.get("d").instances}["lb_000000"]
    assert set(lb.runtime_properties["peers"]) == {"app_000001", "app_000002"}


def test_uninstall_ignores_failures_unless_asked_not_to(
    service: ExecutionService, deployments: DeploymentService, log: Path, store: Store
) -> None:
    from dalsegno.model.records import InstanceChange

    blueprint = deploy_kit.blueprint(1)
    blueprint.node_templates["db"].operations["stop"] = deploy_kit.op("fail")
    store.put_blueprint("broken", "(built in the test)", blueprint)
    for name in ("e", "f"):
        made = deploy_kit.instances(name, 1, prefix=name)
        deployments.create_planned(name, "broken", {"log": str(log)}, made)
        store.update_instances([InstanceChange(i.id, "started") for i in made])

    ignored = service.start("uninstall", {}, deployment="e")
    assert service.find(ignored.execution_id).status == "completed"
    assert {i.state for i in deployments.get("e").instances} == {S.DELETED}
    assert ["fail", "edb_000000"] in [line[:2] for line in deploy_kit.lines(log)]

    stopped = service.start("uninstall", {"ignore_failure": False}, deployment="f")
    execution = service.find(stopped.execution_id)
    assert execution.status == "failed"
    assert "fdb_000000 refuses" in (execution.error or "")
    found = {i.id: i.state for i in deployments.get("f").instances}
    assert found["fdb_000000"] is S.STOPPING  # its stop failed: nothing after it ran
    assert found["fnet_000000"] is S.STARTED  # waits for db, which linked to it
    assert found["flb_000000"] is S.DELETED  # nothing waited for the db there


def test_a_dry_run_install_changes_no_instance(
    service: ExecutionService, deployments: DeploymentService, log: Path
) -> None:
    result = service.start("install", {}, deployment="d", dry_run=True)
    assert service.find(result.execution_id).status == "completed"
    assert set(states(deployments).values()) == {"uninitialized"}
    assert all(i.runtime_properties == {} for i in deployments.get("d").instances)
    assert not log.exists()  # no operation was called


def test_a_workflow_against_no_deployment_is_refused_in_one_line(
    service: ExecutionService, deployments: DeploymentService
) -> None:
    result = service.start("dalsegno.lifecycle:install", {})
    execution = service.find(result.execution_id)
    assert execution.status == "failed"
    assert execution.error == "install runs against a deployment: start it with one (-d NAME)"
    with pytest.raises(RefusedError, match="no chosen instance has an operation 'nope'"):
        raise_failure(service, "execute_operation", operation="nope")


def raise_failure(service: ExecutionService, workflow: str, **params: object) -> None:
    execution = service.find(service.start(workflow, params, deployment="d").execution_id)
    assert execution.status == "failed"
    raise RefusedError(execution.error or "")


def test_heal_is_the_way_out_of_a_half_made_instance(
    service: ExecutionService, deployments: DeploymentService, log: Path, store: Store
) -> None:
    from dalsegno.model.records import InstanceChange

    run(service, "install")
    store.update_instances([InstanceChange("db_000000", "creating", {"half": True})])
    log.write_text("")
    run(service, "heal", instance="db_000000")
    seen = [" ".join(line[:2]) for line in deploy_kit.lines(log)]
    assert seen == [
        "delete db_000000",
        "create db_000000",
        "configure db_000000",
        "start db_000000",
    ]
    db = {i.id: i for i in deployments.get("d").instances}["db_000000"]
    assert db.state is S.STARTED
    assert "half" not in db.runtime_properties  # its delete cleared what was left
