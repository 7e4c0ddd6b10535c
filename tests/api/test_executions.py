"""Every execution endpoint, answered with the same JSON as the CLI's `--json`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.conftest import LiveApi, ref, snapshot
from dalsegno.service.executions import ExecutionService
from dalsegno.service.views import event_json, execution_json, plan_json


def test_start_creates_a_pending_execution_and_wakes_the_manager(
    live: LiveApi, client: httpx.Client, service: ExecutionService
) -> None:
    answer = client.post("/executions", json={"workflow": ref("deploy"), "params": {"hosts": 3}})

    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/json"
    created = answer.json()
    assert created == execution_json(service.find(created["id"]))
    assert created["status"] == "pending"
    assert created["workflow"] == ref("deploy")
    assert created["params"] == {"hosts": 3}
    assert "tasks" not in created
    assert len(live.changes) == 1


def test_start_without_params_uses_the_workflow_defaults(
    client: httpx.Client, service: ExecutionService
) -> None:
    answer = client.post("/executions", json={"workflow": ref("deploy")})

    assert answer.status_code == 201, answer.text
    assert answer.json()["params"] == {}


def test_list_is_the_cli_json_newest_first(
    client: httpx.Client, service: ExecutionService, ended: dict[str, str]
) -> None:
    pending = client.post("/executions", json={"workflow": ref("deploy")}).json()

    answer = client.get("/executions")

    assert answer.status_code == 200
    listed = answer.json()
    assert listed == [execution_json(execution) for execution in service.list_executions()]
    assert listed[0]["id"] == pending["id"]
    assert {execution["id"] for execution in listed} == {pending["id"], *ended.values()}
    assert all("tasks" not in execution for execution in listed)


@pytest.mark.parametrize("status", ["failed", "completed", "pending", "cancelled"])
def test_list_filters_by_status(client: httpx.Client, ended: dict[str, str], status: str) -> None:
    client.post("/executions", json={"workflow": ref("deploy")})

    answer = client.get("/executions", params={"status": status})

    assert answer.status_code == 200
    listed = answer.json()
    assert all(execution["status"] == status for execution in listed)
    expected = {"failed": 1, "completed": 1, "pending": 1, "cancelled": 0}[status]
    assert len(listed) == expected


def test_get_answers_the_execution_with_its_tasks(
    client: httpx.Client, service: ExecutionService, ended: dict[str, str]
) -> None:
    execution_id = ended["failed"]

    answer = client.get(f"/executions/{execution_id}")

    assert answer.status_code == 200
    found = answer.json()
    assert found == execution_json(
        *service.get(execution_id), service.actions(execution_id), service.subgraphs(execution_id)
    )
    assert found["subgraphs"] == []
    assert found["status"] == "failed"
    assert {task["key"]: task["status"] for task in found["tasks"]} == {
        "vm0": "succeeded",
        "app": "failed",
    }
    assert set(found["tasks"][0]) == {
        "id",
        "graph",
        "key",
        "operation",
        "agent",
        "status",
        "retries",
        "error",
        "result",
        "subgraph",
        "ignored",
    }


def test_get_accepts_a_unique_id_prefix(client: httpx.Client, ended: dict[str, str]) -> None:
    execution_id = ended["completed"]

    answer = client.get(f"/executions/{execution_id[:12]}")

    assert answer.status_code == 200
    assert answer.json()["id"] == execution_id


def test_events_are_the_cli_json_and_page_with_after(
    client: httpx.Client, service: ExecutionService, ended: dict[str, str]
) -> None:
    execution_id = ended["failed"]
    expected = [event_json(event) for event in service.events(execution_id)]
    assert len(expected) > 2

    everything = client.get(f"/executions/{execution_id}/events")
    later = client.get(f"/executions/{execution_id}/events", params={"after": expected[1]["id"]})
    none = client.get(f"/executions/{execution_id}/events", params={"after": expected[-1]["id"]})

    assert everything.status_code == later.status_code == none.status_code == 200
    assert everything.json() == expected
    assert later.json() == expected[2:]
    assert none.json() == []


def test_resume_dry_run_answers_the_plan_and_changes_nothing(
    live: LiveApi, client: httpx.Client, service: ExecutionService, ended: dict[str, str]
) -> None:
    execution_id = ended["failed"]
    before = snapshot(service)

    answer = client.post(
        f"/executions/{execution_id}/resume",
        json={"dry_run": True, "reset_operations": True},
    )

    assert answer.status_code == 202, answer.text
    assert answer.json() == plan_json(service.plan(execution_id, reset_operations=True))
    assert {task["key"]: task["action"] for task in answer.json()["tasks"]}["vm0"]
    assert snapshot(service) == before
    assert live.changes == []


def test_resume_hands_the_execution_over_to_a_manager(
    live: LiveApi, client: httpx.Client, service: ExecutionService, ended: dict[str, str]
) -> None:
    execution_id = ended["failed"]

    answer = client.post(f"/executions/{execution_id}/resume", json={"reset_operations": False})

    assert answer.status_code == 202, answer.text
    resumed = answer.json()
    assert resumed == execution_json(service.find(execution_id))
    assert resumed["status"] == "pending"
    assert len(live.changes) == 1
    types = [event.type for event in service.events(execution_id)]
    assert "workflow_resumed" in types[-3:]


def test_resume_without_a_body_uses_the_defaults(
    client: httpx.Client, service: ExecutionService, ended: dict[str, str]
) -> None:
    answer = client.post(f"/executions/{ended['failed']}/resume")

    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"


@pytest.mark.parametrize("mode", ["cancel", "force", "kill"])
def test_cancel_of_a_pending_execution_ends_it_at_once(
    live: LiveApi, client: httpx.Client, service: ExecutionService, mode: str
) -> None:
    created = client.post("/executions", json={"workflow": ref("deploy")}).json()

    answer = client.post(f"/executions/{created['id']}/cancel", json={"mode": mode})

    assert answer.status_code == 202, answer.text
    assert answer.json() == execution_json(service.find(created["id"]))
    assert answer.json()["status"] == "cancelled"
    assert len(live.changes) == 2


def test_cancel_without_a_body_is_a_plain_cancel(
    client: httpx.Client, service: ExecutionService
) -> None:
    created = client.post("/executions", json={"workflow": ref("deploy")}).json()

    answer = client.post(f"/executions/{created['id']}/cancel")

    assert answer.status_code == 202, answer.text
    types = [event.type for event in service.events(created["id"])]
    assert answer.json()["status"] == "cancelled"
    assert "workflow_cancelled" in types


@pytest.fixture
def running(tmp_path: Path, service: ExecutionService) -> Iterator[str]:
    """An execution run in a thread of this process, its task `a` held inside its operation."""
    gates = tmp_path / "gates"
    gates.mkdir()
    created: list[str] = []
    thread = threading.Thread(
        target=service.start,
        args=(ref("gated_chain"), {"dir": str(gates)}),
        kwargs={"on_created": created.append},
    )
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not (gates / "a.running").exists():
            assert thread.is_alive()
            assert time.monotonic() < deadline, "task a never started"
            time.sleep(0.02)
        yield created[0]
    finally:
        (gates / "a.go").touch()
        thread.join(timeout=15)
        assert not thread.is_alive()


def test_running_execution_refuses_a_resume_and_takes_a_cancel(
    client: httpx.Client, service: ExecutionService, running: str
) -> None:
    before = snapshot(service)

    resume = client.post(f"/executions/{running}/resume", json={})

    assert resume.status_code == 409, resume.text
    assert "still running" in resume.json()["error"]
    assert snapshot(service) == before

    cancel = client.post(f"/executions/{running}/cancel", json={"mode": "force"})

    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["status"] == "force_cancelling"
    deadline = time.monotonic() + 15
    while service.find(running).status != "cancelled":
        assert time.monotonic() < deadline, "the cancel was never carried out"
        time.sleep(0.05)
    read = client.get(f"/executions/{running}")
    assert read.json()["status"] == "cancelled"
