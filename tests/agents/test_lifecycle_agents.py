"""Lifecycle operations run on an agent (docs/lifecycle.md, "What an operation sees";
docs/agents.md), with a real manager and real agent processes killed with SIGKILL, on
both backends: a blueprint whose templates name the agent queue `web`.

What is checked is what an operator sees (`deployments get`, the tasks' attempts) and
what the operations themselves logged (where they ran, what they saw of their instance):
the view the manager reads when the claim starts an attempt reaches the agent's ctx; the
"-ing" state is committed with that start; the runtime properties the operation changed
come back with its result, kept in the agent's outbox, and the owner writes them with the
task's success, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.processes import Cluster, wait_for
from conftest import run_cli
from dalsegno.model.blueprints import InstanceState
from dalsegno.service.blueprints import BlueprintService
from dalsegno.service.deployments import DeploymentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store

pytestmark = pytest.mark.crash

BLUEPRINT = """
inputs:
  log: {type: string}
  hold: {type: string, default: ""}
node_templates:
  db:
    type: test.db
    agent: web
    operations: &operations
      create: {implementation: "agent_lifecycle:create", inputs: {log: {get_input: log}}}
      configure:
        implementation: "agent_lifecycle:configure"
        inputs: {log: {get_input: log}, hold: {get_input: hold}}
      start: {implementation: "agent_lifecycle:start", inputs: {log: {get_input: log}}}
  app:
    type: test.app
    agent: web
    operations: *operations
    relationships:
      - type: connected_to
        target: db
        source_operations:
          establish: {implementation: "agent_lifecycle:establish", inputs: {log: {get_input: log}}}
"""


@pytest.fixture
def cluster(home: Path, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(home, tmp_path)
    yield running
    running.stop_all()


class Install:
    """A deployment `dep` of BLUEPRINT (a db, an app connected to it) and its install,
    created for the cluster's manager to run."""

    def __init__(self, store: Store, service: ExecutionService, tmp_path: Path, hold: bool):
        self.store = store
        self.log, self.hold = tmp_path / "ops.log", tmp_path / "hold"
        if hold:
            self.hold.touch()
        BlueprintService(store).upload(BLUEPRINT, "on-agent")
        created = DeploymentService(store).create(
            "dep", "on-agent", {"log": str(self.log), "hold": str(self.hold)}
        )
        self.ids = {instance.node: instance.id for instance in created.instances}
        self.execution_id = service.create("install", {}, deployment="dep").id

    def ops(self) -> list[dict[str, Any]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def ran(self, op: str, node: str) -> list[dict[str, Any]]:
        return [e for e in self.ops() if e["op"] == op and e["instance"] == self.ids[node]]

    def instance(self, node: str) -> Any:
        return self.store.get_instances([self.ids[node]])[self.ids[node]]

    def attempts(self, op: str, node: str) -> list[tuple[str, str]]:
        (task,) = self.store.find_tasks_by_key(self.execution_id, f"{self.ids[node]}.{op}")
        return [(a.outcome, a.worker) for a in self.store.list_task_attempts(task.id)]

    def wait_completed(self, cluster: Cluster) -> None:
        wait_for(lambda: cluster.status(self.execution_id) in ("completed", "failed"), 40,
                 "for the install to end")  # fmt: skip
        assert cluster.get(self.execution_id)["error"] is None
        assert cluster.status(self.execution_id) == "completed"


def test_an_install_on_an_agent_sees_and_changes_its_instances(
    cluster: Cluster, store: Store, service: ExecutionService, home: Path, tmp_path: Path
) -> None:
    cluster.start_manager()
    cluster.start_agent("agent-1")
    install = Install(store, service, tmp_path, hold=False)
    install.wait_completed(cluster)
    db, app = install.ids["db"], install.ids["app"]
    ran = install.ops()
    assert {e["agent"] for e in ran} == {"agent-1"}  # every operation ran on the agent
    assert [(e["op"], e["instance"]) for e in ran] == [
        ("create", db), ("configure", db), ("start", db),
        ("create", app), ("configure", app), ("start", app), ("establish", app),
    ]  # fmt: skip
    assert {(e["node"], e["deployment"]) for e in ran} == {("db", "dep"), ("app", "dep")}
    # the "-ing" state was committed with the attempt's start, before the operation ran
    assert [e["state"] for e in ran if e["instance"] == db] == [
        "creating", "configuring", "starting",
    ]  # fmt: skip
    (configured,) = install.ran("configure", "db")
    address = configured["properties"]["address"]  # what create set, on the agent
    assert configured["properties"] == {
        "address": address, "created_on": "agent-1", "scratch": {"left": "by create"},
    }  # fmt: skip
    (established,) = install.ran("establish", "app")
    assert (established["source"], established["target"]) == (app, db)
    shown = run_cli(home, "deployments", "get", "dep", "--json")
    assert shown.returncode == 0, shown.stderr
    instances = {i["id"]: i for i in json.loads(shown.stdout)["instances"]}
    assert instances[db]["state"] == "started"
    # "scratch" (set by create) was removed by configure, key by key
    assert instances[db]["runtime_properties"] == {
        "address": address,
        "created_on": "agent-1",
        "configured_with": address,
        "running": True,
    }
    assert instances[app]["state"] == "started"
    assert instances[app]["runtime_properties"]["peer"] == address
    assert install.attempts("configure", "db") == [("succeeded", "agent agent-1")]


def test_a_killed_agent_s_resumable_operation_is_queued_again_and_the_install_ends_started(
    cluster: Cluster, store: Store, service: ExecutionService, tmp_path: Path
) -> None:
    cluster.start_manager()
    cluster.start_agent("agent-1")
    install = Install(store, service, tmp_path, hold=True)
    began = Path(f"{install.hold}.began")
    wait_for(began.exists, 30, "for db's configure to run on agent-1")
    assert install.instance("db").state is InstanceState.CONFIGURING
    cluster.agents["agent-1"].kill()
    cluster.agents["agent-1"].wait(10)
    cluster.start_agent("agent-2")
    wait_for(lambda: len(install.ran("configure", "db")) == 2, 30, "for configure again")
    install.hold.unlink()
    install.wait_completed(cluster)
    runs = [(e["agent"], e["resume"], e["state"]) for e in install.ran("configure", "db")]
    assert runs == [("agent-1", False, "configuring"), ("agent-2", True, "configuring")]
    assert install.attempts("configure", "db") == [
        ("lost", "agent agent-1"),
        ("succeeded", "agent agent-2"),
    ]
    assert len(install.ran("create", "db")) == 1  # not resumable: never run twice
    db = install.instance("db")
    assert db.state is InstanceState.STARTED
    assert db.runtime_properties["configured_with"] == db.runtime_properties["address"]
    assert "scratch" not in db.runtime_properties
    assert install.instance("app").state is InstanceState.STARTED


def test_a_result_kept_in_the_outbox_through_restarts_applies_its_properties_once(
    cluster: Cluster, store: Store, service: ExecutionService, tmp_path: Path
) -> None:
    cluster.start_manager()
    cluster.start_agent("agent-1")
    install = Install(store, service, tmp_path, hold=True)
    wait_for(Path(f"{install.hold}.began").exists, 30, "for db's configure to run")
    cluster.kill_manager()
    install.hold.unlink()  # configure ends while no manager answers: its result waits
    wait_for(lambda: len(cluster.outbox("agent-1")) == 1, 20, "for the result in the outbox")
    cluster.agents["agent-1"].kill()  # and the agent too: only the outbox holds it now
    cluster.agents["agent-1"].wait(10)
    assert install.instance("db").runtime_properties.get("configured_with") is None
    cluster.start_agent("agent-1")  # the same name and home: it delivers what was left
    cluster.start_manager()  # takes the install over
    install.wait_completed(cluster)
    assert cluster.outbox("agent-1") == []
    assert len(install.ran("configure", "db")) == 1  # ran once, applied once
    assert install.attempts("configure", "db") == [("succeeded", "agent agent-1")]
    db = install.instance("db")
    assert db.state is InstanceState.STARTED
    assert db.runtime_properties["configured_with"] == db.runtime_properties["address"]
    assert "scratch" not in db.runtime_properties
    succeeded = [
        e for e in store.list_events(install.execution_id)
        if e.type == "task_succeeded" and e.task_key == f"{install.ids['db']}.configure"
    ]  # fmt: skip
    assert len(succeeded) == 1
