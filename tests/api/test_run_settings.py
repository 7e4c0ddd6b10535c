"""`POST /executions` with `dry_run`, `task_retries` and `task_retry_interval` (issue 15,
items 5 and 6): stored with the execution, shown in every execution answer, and refused
with 422 and nothing stored when malformed or out of range."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.conftest import LiveApi, ref
from api.test_refusals import refused
from conftest import WORKFLOWS
from dalsegno.service.executions import ExecutionService
from dalsegno.service.views import execution_json

PRECEDENCE = f"{WORKFLOWS / 'settings_flows.py'}:precedence"


def test_the_settings_are_stored_and_answered_everywhere(
    live: LiveApi, client: httpx.Client, service: ExecutionService
) -> None:
    body = {
        "workflow": ref("deploy"),
        "dry_run": True,
        "task_retries": 3,
        "task_retry_interval": 0.5,
    }

    answer = client.post("/executions", json=body)

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["dry_run"], created["task_retries"], created["task_retry_interval"]) == (
        True,
        3,
        0.5,
    )
    stored = service.find(created["id"])
    assert (stored.dry_run, stored.task_retries, stored.task_retry_interval) == (True, 3, 0.5)
    assert created == execution_json(stored)
    got = client.get(f"/executions/{created['id']}").json()
    assert (got["dry_run"], got["task_retries"], got["task_retry_interval"]) == (True, 3, 0.5)
    (listed,) = [e for e in client.get("/executions").json() if e["id"] == created["id"]]
    assert (listed["dry_run"], listed["task_retries"]) == (True, 3)


def test_without_settings_an_execution_is_real_with_none(
    client: httpx.Client, ended: dict[str, str]
) -> None:
    created = client.post("/executions", json={"workflow": ref("deploy")}).json()

    assert (created["dry_run"], created["task_retries"], created["task_retry_interval"]) == (
        False,
        None,
        None,
    )
    old = client.get(f"/executions/{ended['completed']}").json()
    assert old["dry_run"] is False


def test_the_workflow_decorator_fills_what_the_request_does_not_set(
    client: httpx.Client,
) -> None:
    only_interval = {"workflow": PRECEDENCE, "params": {"log": "x"}, "task_retry_interval": 1}

    created = client.post("/executions", json=only_interval).json()

    assert (created["task_retries"], created["task_retry_interval"]) == (2, 1.0)


@pytest.mark.parametrize("retries", [-1, 0, 2.0])
def test_whole_numbers_from_minus_one_are_taken(client: httpx.Client, retries: Any) -> None:
    answer = client.post("/executions", json={"workflow": ref("deploy"), "task_retries": retries})

    assert answer.status_code == 201, answer.text
    assert answer.json()["task_retries"] == int(retries)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"task_retries": -2}, "task_retries"),
        ({"task_retries": 1.5}, "task_retries"),
        ({"task_retries": "3"}, "task_retries"),
        ({"task_retries": True}, "task_retries"),
        ({"task_retry_interval": -0.1}, "task_retry_interval"),
        ({"task_retry_interval": "1"}, "task_retry_interval"),
        ({"task_retry_interval": True}, "task_retry_interval"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"dry_run": 1}, "dry_run"),
        ({"dry_run": None}, "dry_run"),
    ],
)
def test_malformed_settings_are_422_and_nothing_is_stored(
    live: LiveApi,
    client: httpx.Client,
    ended: dict[str, str],
    fields: dict[str, Any],
    expected: str,
) -> None:
    body = {"workflow": ref("deploy"), **fields}

    reason = refused(live, client, 422, "POST", "/executions", json=body)

    assert expected in reason


def test_an_interval_that_is_not_a_json_number_is_422(
    live: LiveApi, client: httpx.Client, ended: dict[str, str]
) -> None:
    for constant in ("NaN", "Infinity"):
        body = json.dumps({"workflow": ref("deploy"), "task_retry_interval": "X"})
        body = body.replace('"X"', constant)  # Python's JSON reads them; the API refuses them

        reason = refused(
            live,
            client,
            422,
            "POST",
            "/executions",
            content=body,
            headers={"Content-Type": "application/json"},
        )

        assert "task_retry_interval" in reason
