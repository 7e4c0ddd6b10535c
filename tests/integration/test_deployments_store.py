"""Blueprints, deployments and node instances in the store, on both backends: what is
written together, and what is refused (changing nothing)."""

from __future__ import annotations

import pytest

from dalsegno.model.blueprints import (
    Blueprint,
    DeploymentRecord,
    InstanceLink,
    InstanceState,
    NodeInstance,
    NodeTemplate,
    Relationship,
)
from dalsegno.model.errors import ConflictError, NotFoundError
from dalsegno.model.records import ExecutionSettings, InstanceChange
from dalsegno.model.states import ExecutionState
from dalsegno.store.base import Store

BLUEPRINT = Blueprint(
    inputs={},
    node_templates={
        "vm": NodeTemplate("vm", "vm", {"size": 1}),
        "app": NodeTemplate("app", "app", relationships=(Relationship("contained_in", "vm"),)),
    },
)


def instances(deployment: str) -> list[NodeInstance]:
    return [
        NodeInstance("vm_000001", deployment, "vm"),
        NodeInstance(
            "app_000002",
            deployment,
            "app",
            links=(InstanceLink("contained_in", "vm", "vm_000001"),),
            host_id="vm_000001",
        ),
    ]


def deploy(store: Store, name: str = "d1") -> None:
    store.create_deployment(DeploymentRecord(name, "bp", {"x": 1}, 0.0), instances(name))


def test_a_blueprint_is_stored_as_uploaded_and_as_parsed(store: Store) -> None:
    stored = store.put_blueprint("bp", "node_templates: {}\n", BLUEPRINT)
    found = store.get_blueprint("bp")
    assert found is not None
    assert found.source == "node_templates: {}\n"
    assert found.blueprint == BLUEPRINT
    assert found.created_at == stored.created_at
    assert [record.id for record in store.list_blueprints()] == ["bp"]
    with pytest.raises(ConflictError, match="blueprint 'bp' already exists"):
        store.put_blueprint("bp", "other", BLUEPRINT)
    assert store.get_blueprint("bp").source == "node_templates: {}\n"  # type: ignore[union-attr]
    assert store.get_blueprint("nope") is None


def test_a_deployment_is_created_with_its_instances_in_one_transaction(store: Store) -> None:
    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    deployment = store.get_deployment("d1")
    assert deployment is not None
    assert deployment.inputs == {"x": 1}
    assert deployment.lock_key == "deployment:d1"
    found = store.list_instances("d1")
    assert [(i.id, i.node, i.state, i.host_id) for i in found] == [
        ("vm_000001", "vm", InstanceState.UNINITIALIZED, None),
        ("app_000002", "app", InstanceState.UNINITIALIZED, "vm_000001"),
    ]
    assert found[1].links == (InstanceLink("contained_in", "vm", "vm_000001"),)
    with pytest.raises(ConflictError, match="deployment 'd1' already exists"):
        deploy(store)
    # an instance id taken by another deployment: the whole creation is refused
    with pytest.raises(ConflictError, match=r"node instance id '(vm_000001|app_000002)' is taken"):
        deploy(store, "d2")
    assert store.get_deployment("d2") is None
    assert store.list_instances("d2") == []
    with pytest.raises(NotFoundError, match="unknown blueprint: nope"):
        store.create_deployment(DeploymentRecord("d3", "nope", {}, 0.0), [])
    assert [d.id for d in store.list_deployments()] == ["d1"]


def test_a_blueprint_in_use_is_not_deleted(store: Store) -> None:
    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    with pytest.raises(ConflictError, match="used by deployment d1"):
        store.delete_blueprint("bp")
    assert store.get_blueprint("bp") is not None
    store.delete_deployment("d1")
    store.delete_blueprint("bp")
    assert store.get_blueprint("bp") is None
    with pytest.raises(NotFoundError):
        store.delete_blueprint("bp")


def test_a_deployment_with_live_instances_is_deleted_only_by_force(store: Store) -> None:
    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    store.update_instances([InstanceChange("vm_000001", "started")])
    with pytest.raises(ConflictError, match="1 of its instances are not deleted"):
        store.delete_deployment("d1")
    assert len(store.list_instances("d1")) == 2
    store.delete_deployment("d1", force=True)
    assert store.get_deployment("d1") is None
    assert store.list_instances("d1") == []


def test_a_deployment_with_an_active_execution_is_not_deleted_even_by_force(
    store: Store,
) -> None:
    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    execution = store.create_execution(
        "m:f", {}, ExecutionState.PENDING, None, None, [],
        lock_key="deployment:d1", settings=ExecutionSettings(deployment_id="d1"),
    )  # fmt: skip
    assert execution.deployment_id == "d1"
    with pytest.raises(ConflictError, match=f"execution {execution.id} of it is active"):
        store.delete_deployment("d1", force=True)
    assert store.get_deployment("d1") is not None


def test_instance_changes_set_state_and_properties_key_by_key(store: Store) -> None:
    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    store.update_instances([InstanceChange("vm_000001", "created", {"ip": "10.0.0.1", "n": 1})])
    store.update_instances([InstanceChange("vm_000001", None, {"n": 2}, ["ip"])])
    vm = store.get_instances(["vm_000001"])["vm_000001"]
    assert vm.state is InstanceState.CREATED
    assert vm.runtime_properties == {"n": 2}
    assert vm.version == 2
    # a changed instance that no longer exists is skipped
    store.update_instances([InstanceChange("gone_000000", "created", {"a": 1})])


def test_a_scale_adds_and_removes_instances_and_links_in_one_transaction(store: Store) -> None:
    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    vm2 = NodeInstance("vm_000003", "d1", "vm")
    link = InstanceLink("connected_to", "vm", "vm_000003")
    store.change_instances("d1", added=[vm2], new_links={"app_000002": [link]})
    app = store.get_instances(["app_000002"])["app_000002"]
    assert app.links == (InstanceLink("contained_in", "vm", "vm_000001"), link)
    store.change_instances("d1", removed=["vm_000003"], dropped_links={"app_000002": [link]})
    found = store.list_instances("d1")
    assert [i.id for i in found] == ["vm_000001", "app_000002"]
    assert found[1].links == (InstanceLink("contained_in", "vm", "vm_000001"),)
    with pytest.raises(NotFoundError):
        store.change_instances("nope", added=[NodeInstance("x_000000", "nope", "x")])


def test_a_task_success_and_its_instance_changes_commit_together(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner's batch writes a lifecycle task's move and its instance's changes in one
    transaction: when the batch fails after the instance was written, neither is kept."""
    import json
    import time

    from dalsegno.engine.lease import this_owner
    from dalsegno.model.blueprints import InstanceBinding
    from dalsegno.model.records import Batch, NewTask, TaskChange
    from dalsegno.model.states import TaskState
    from dalsegno.store import tasks

    store.put_blueprint("bp", "src", BLUEPRINT)
    deploy(store)
    execution = store.create_execution(
        "m:f", {}, ExecutionState.STARTED, this_owner(), time.time() + 60, []
    )
    binding = InstanceBinding("vm_000001", starting="creating", success="created")
    graph = store.store_graph(
        execution.id,
        execution.lease_token,
        "g",
        [NewTask("k", "m:f", None, {}, "{}", 0, 0.0, None, instance=json.dumps(binding.to_json()))],
        [],
        [],
    )
    task_id = graph.tasks[0].id

    def change(expected: TaskState, status: TaskState) -> TaskChange:
        return TaskChange(task_id, expected, status, 0, 1, None, None, None, 1.0, None)

    start = Batch(execution.id, execution.lease_token, time.time() + 60)
    start.starts = [change(TaskState.PENDING, TaskState.STARTED)]
    start.instance_starts = [InstanceChange("vm_000001", "creating")]
    store.apply(start)
    assert store.get_instances(["vm_000001"])["vm_000001"].state is InstanceState.CREATING

    def success() -> Batch:
        batch = Batch(execution.id, execution.lease_token, time.time() + 60)
        batch.tasks = [change(TaskState.STARTED, TaskState.SUCCEEDED)]
        batch.instances = [InstanceChange("vm_000001", "created", {"ip": "10.0.0.1"})]
        return batch

    real = tasks.write_instance_changes

    def written_then_failed(conn: object, changes: list[InstanceChange]) -> None:
        real(conn, changes)  # type: ignore[arg-type]
        msg = "the batch fails after the instance was written"
        raise RuntimeError(msg)

    monkeypatch.setattr(tasks, "write_instance_changes", written_then_failed)
    with pytest.raises(RuntimeError, match="after the instance was written"):
        store.apply(success())
    vm = store.get_instances(["vm_000001"])["vm_000001"]
    assert (vm.state, vm.runtime_properties) == (InstanceState.CREATING, {})
    assert store.load_graphs(execution.id)["g"].tasks[0].status is TaskState.STARTED

    monkeypatch.setattr(tasks, "write_instance_changes", real)
    store.apply(success())
    vm = store.get_instances(["vm_000001"])["vm_000001"]
    assert (vm.state, vm.runtime_properties) == (InstanceState.CREATED, {"ip": "10.0.0.1"})
    assert store.load_graphs(execution.id)["g"].tasks[0].status is TaskState.SUCCEEDED
