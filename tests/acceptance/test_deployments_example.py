"""The three-tier example (examples/blueprints/) run by a real `dalsegno manager`, both
backends: install, execute_operation, scale up and down, heal and uninstall, each an
execution created through the service layer and run by the manager process; what ran is
read from the fake cloud's own log and files (docs/lifecycle.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acceptance.test_manager_process import free_port
from conftest import WORKFLOWS, cli_env
from dalsegno.model.blueprints import InstanceState
from dalsegno.model.states import ExecutionState
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blueprints" / "three_tier.yaml"
S = InstanceState


@pytest.fixture
def manager(home: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        # it serves the example's operations (docs/security.md)
        [
            sys.executable,
            "-m",
            "dalsegno",
            "manager",
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--workflows",
            str(EXAMPLE.parent),
        ],
        cwd=WORKFLOWS,
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    yield process
    process.kill()
    process.wait(10)


def ops(cloud: Path) -> list[dict[str, Any]]:
    log = cloud / "operations.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run(store: Store, service: ExecutionService, workflow: str, **params: Any) -> None:
    """Create the execution for the manager and wait for its end."""
    execution = service.create(workflow, params, deployment="shop")
    deadline = time.monotonic() + 60
    while True:
        found = store.get_execution(execution.id)
        assert found is not None
        if found.status in (ExecutionState.COMPLETED, ExecutionState.FAILED):
            break
        assert time.monotonic() < deadline, f"{workflow} did not end"
        time.sleep(0.05)
    assert found.status is ExecutionState.COMPLETED, found.error


def test_the_example_through_a_manager(
    store: Store,
    service: ExecutionService,
    manager: subprocess.Popen[str],
    tmp_path: Path,
) -> None:
    cloud = tmp_path / "cloud"
    service.blueprints.upload_file(EXAMPLE, "three-tier")
    created = service.deployments.create("shop", "three-tier", {"cloud_dir": str(cloud)})
    apps = [i.id for i in created.instances if i.node == "app_vm"]

    run(store, service, "install")
    instances = {i.id: i for i in service.deployments.get("shop").instances}
    assert {i.state for i in instances.values()} == {S.STARTED}
    lb = next(i for i in instances.values() if i.node == "load_balancer")
    app_ips = {i.id: i.runtime_properties["host_ip"] for i in instances.values() if i.node == "app"}
    assert lb.runtime_properties["backends"] == app_ips  # each app's address, by its host
    resources = {p.stem for p in (cloud / "shop").glob("*.json")}
    assert resources == set(instances)  # one fake resource per instance
    creates = [entry["instance"] for entry in ops(cloud) if entry["op"] == "create"]
    assert sorted(creates) == sorted(instances)  # each created once

    before = len(ops(cloud))
    run(store, service, "execute_operation", operation="start", node="app")
    again = sorted(entry["instance"] for entry in ops(cloud)[before:])
    assert again == sorted(app_ips)  # the apps' start ran again, and nothing else
    run(store, service, "scale", node="app_vm", delta=1)
    scaled = {i.id: i for i in service.deployments.get("shop").instances}
    new_vm = next(i for i in scaled if scaled[i].node == "app_vm" and i not in apps)
    new_app = next(i for i in scaled.values() if i.host_id == new_vm)
    lb = next(i for i in scaled.values() if i.node == "load_balancer")
    assert new_app.id in lb.runtime_properties["backends"]  # its establish ran for the pair
    assert {i.state for i in scaled.values()} == {S.STARTED}

    run(store, service, "scale", node="app_vm", delta=-1)
    after = {i.id: i for i in service.deployments.get("shop").instances}
    assert new_vm not in after and new_app.id not in after
    lb = next(i for i in after.values() if i.node == "load_balancer")
    assert new_app.id not in lb.runtime_properties["backends"]  # unlinked first
    assert not (cloud / "shop" / f"{new_vm}.json").exists()

    before = len(ops(cloud))
    run(store, service, "heal", instance=apps[0])
    healed = {entry["instance"] for entry in ops(cloud)[before:] if entry["op"] == "create"}
    app_on_it = next(i.id for i in after.values() if i.host_id == apps[0])
    assert healed == {apps[0], app_on_it}
    assert {i.state for i in service.deployments.get("shop").instances} == {S.STARTED}

    run(store, service, "uninstall")
    assert {i.state for i in service.deployments.get("shop").instances} == {S.DELETED}
    assert not list((cloud / "shop").glob("*.json"))
    service.deployments.delete("shop")
    assert store.get_deployment("shop") is None
