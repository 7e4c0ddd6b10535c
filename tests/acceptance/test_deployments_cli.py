"""`dalsegno blueprints` and `dalsegno deployments`, and `run install -d`, as real CLI
processes on both backends: the three-tier example (examples/blueprints) uploaded,
deployed, installed and uninstalled on its fake cloud; every refusal one line, exit 2,
and nothing changed; two executions of one deployment, the second `queued` behind the
first's lock."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import start_cli
from dalsegno.service.executions import ExecutionService

Cli = Callable[..., subprocess.CompletedProcess[str]]

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "examples" / "blueprints" / "three_tier.yaml"
NODES = ["network", "db_vm", "app_vm", "database", "app", "load_balancer"]


def ok(cli: Cli, *args: str) -> Any:
    """The command's `--json` answer; it must succeed."""
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refused(cli: Cli, *args: str) -> str:
    """The one line a refused command prints (exit 2, nothing on stdout)."""
    done = cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0].removeprefix("error: ")


def everything(service: ExecutionService) -> tuple[Any, ...]:
    """Every blueprint, deployment, instance and execution in the store."""
    store = service.store
    deployments = store.list_deployments()
    return (
        [(b.id, b.source) for b in store.list_blueprints()],
        deployments,
        [store.list_instances(d.id) for d in deployments],
        [e.id for e in service.list_executions()],
    )


def deploy(cli: Cli, name: str, cloud: Path, *inputs: str) -> Any:
    pairs = [arg for pair in (f"cloud_dir={cloud}", *inputs) for arg in ("-i", pair)]
    return ok(cli, "deployments", "create", name, "--blueprint", "three-tier", *pairs)


BAD_BLUEPRINTS = {
    "count.yaml": (
        "node_templates:\n  web:\n    type: server\n    instances: -1\n",
        "count.yaml:4: node_templates.web.instances: must be a whole number >= 0, not -1",
    ),
    "broken.yaml": ("node_templates:\n  web: {type: [\n", "broken.yaml:3: (document): not valid"),
}


def test_blueprints_and_the_refusals_of_bad_input(
    cli: Cli, service: ExecutionService, tmp_path: Path
) -> None:
    """Upload, list, read, delete; then every refusal is one line, exit 2, and leaves the
    store as it was."""
    made = ok(cli, "blueprints", "upload", str(THREE_TIER), "--id", "three-tier")
    assert made["id"] == "three-tier" and made["node_templates"] == NODES
    copy = tmp_path / "second.yaml"
    copy.write_text(THREE_TIER.read_text())
    assert ok(cli, "blueprints", "upload", str(copy))["id"] == "second"  # the file's stem
    assert [found["id"] for found in ok(cli, "blueprints", "list")] == ["second", "three-tier"]
    read = ok(cli, "blueprints", "get", "three-tier")
    assert read["source"] == THREE_TIER.read_text()
    create = read["plan"]["node_templates"][0]["operations"]["create"]["implementation"]
    assert create == f"{THREE_TIER.parent / 'cloud.py'}:create"
    table = cli("blueprints", "get", "three-tier")
    assert table.returncode == 0
    assert "load_balancer" in table.stdout and "connected_to app" in table.stdout
    deleted = cli("blueprints", "delete", "second")
    assert deleted.returncode == 0 and deleted.stdout == "Blueprint second deleted\n"
    deploy(cli, "web", tmp_path / "cloud")
    before = everything(service)
    taken = refused(cli, "blueprints", "upload", str(THREE_TIER), "--id", "three-tier")
    assert taken == "blueprint 'three-tier' already exists"
    for name, (text, reason) in BAD_BLUEPRINTS.items():
        path = tmp_path / name
        path.write_text(text)
        assert refused(cli, "blueprints", "upload", str(path)).startswith(reason)
    create_other = ("deployments", "create", "other", "--blueprint")
    assert refused(cli, *create_other, "nope") == "unknown blueprint: nope"
    assert refused(cli, *create_other, "three-tier", "-i", "app_vms=two") == (
        'inputs.app_vms: must be a whole number, not "two"'
    )
    assert refused(cli, *create_other, "three-tier", "-i", "vms=2").startswith(
        "inputs.vms: not an input of the blueprint (its inputs: app_vms, image"
    )
    assert refused(cli, *create_other, "three-tier", "-i", "app_vms") == (
        "malformed input: -i 'app_vms' is not KEY=VALUE"
    )
    assert refused(cli, "deployments", "create", "web", "--blueprint", "three-tier") == (
        "deployment 'web' already exists"
    )
    assert refused(cli, "blueprints", "delete", "three-tier") == (
        "Cannot delete blueprint 'three-tier': used by deployment web"
    )
    assert refused(cli, "deployments", "get", "nope") == "unknown deployment: nope"
    assert refused(cli, "run", "install", "-d", "nope") == "unknown deployment: nope"
    assert refused(cli, "run", "install") == (
        "'install' is a built-in workflow: run it against a deployment, -d NAME"
    )
    assert everything(service) == before


def test_install_then_uninstall_then_delete(cli: Cli, tmp_path: Path) -> None:
    cloud = tmp_path / "cloud"
    ok(cli, "blueprints", "upload", str(THREE_TIER), "--id", "three-tier")
    made = deploy(cli, "web", cloud, "app_vms=2")
    assert made["instance_states"] == {"uninitialized": 8}
    installed = cli("run", "install", "-d", "web", "-q")
    assert installed.returncode == 0, installed.stderr
    shown = ok(cli, "deployments", "get", "web")
    assert shown["instance_states"] == {"started": 8}
    vms = [i for i in shown["instances"] if i["node"] in ("db_vm", "app_vm")]
    assert len(vms) == 3 and all(i["runtime_properties"].get("ip") for i in vms)
    (execution,) = ok(cli, "executions", "list")
    assert execution["workflow"] == "dalsegno.lifecycle:install"
    assert execution["deployment_id"] == "web" and execution["lock"] == "deployment:web"
    table = cli("deployments", "get", "web")
    assert table.returncode == 0 and "8 started" in table.stdout and vms[0]["id"] in table.stdout
    assert refused(cli, "deployments", "delete", "web") == (
        "Cannot delete deployment 'web': 8 of its instances are not deleted "
        "(run uninstall first, or use --force)"
    )
    assert ok(cli, "deployments", "get", "web") == shown
    uninstalled = cli("run", "uninstall", "--deployment", "web", "-q")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert ok(cli, "deployments", "get", "web")["instance_states"] == {"deleted": 8}
    assert ok(cli, "deployments", "delete", "web") == {"id": "web", "deleted": True}
    assert ok(cli, "deployments", "list") == []
    assert ok(cli, "blueprints", "delete", "three-tier") == {"id": "three-tier", "deleted": True}


def test_a_second_execution_of_a_deployment_waits_queued(
    cli: Cli, home: Path, service: ExecutionService, tmp_path: Path
) -> None:
    ok(cli, "blueprints", "upload", str(THREE_TIER), "--id", "three-tier")
    deploy(cli, "web", tmp_path / "cloud", "app_vms=1")
    # only the install's operations take their time (the fake cloud's delay, set for its
    # process alone): it must still run when the uninstall is started; the uninstall need not
    first = start_cli(home, "run", "install", "-d", "web", "-q", DALSEGNO_FAKE_CLOUD_DELAY="0.5")
    second = None
    try:
        first_id = wait_for_execution(service, "started")
        second = start_cli(home, "executions", "start", "uninstall", "-d", "web", "-q")
        second_id = wait_for_execution(service, "queued")
        assert service.find(first_id).status == "started"  # it was queued behind a run
        _, first_err = first.communicate(timeout=120)
        assert first.returncode == 0, first_err
        _, second_err = second.communicate(timeout=120)
        assert second.returncode == 0, second_err
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    events = cli("events", second_id, "--json")
    assert events.returncode == 0, events.stderr
    messages = [json.loads(line)["message"] for line in events.stdout.splitlines()]
    waited = [m for m in messages if "lock 'deployment:web'" in m.lower()]
    assert len(waited) >= 2, messages
    assert waited[0].startswith("Queued: lock 'deployment:web' is held"), messages
    assert waited[1] == "Lock 'deployment:web' is free: pending", messages
    listed = {e["id"]: e for e in ok(cli, "executions", "list")}
    assert listed[second_id]["workflow"] == "dalsegno.lifecycle:uninstall"
    assert listed[second_id]["deployment_id"] == "web"
    # the uninstall began only after the install ended
    assert listed[second_id]["started_at"] >= listed[first_id]["ended_at"]
    assert ok(cli, "deployments", "get", "web")["instance_states"] == {"deleted": 6}


def wait_for_execution(service: ExecutionService, status: str, timeout: float = 60) -> str:
    """The id of the execution that reached `status` (read from the store)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for execution in service.list_executions():
            if execution.status == status:
                return execution.id
        time.sleep(0.05)
    pytest.fail(f"no execution reached {status}")
