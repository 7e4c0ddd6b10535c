"""Params are checked against the workflow's annotations before anything is stored: the
CLI in its own process and through a manager, and the REST API (service/params.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from acceptance.test_cli_remote import TOKEN, Remote, remote  # noqa: F401 - the fixture
from conftest import WORKFLOWS
from dalsegno.service.executions import ExecutionService

TYPED = f"{WORKFLOWS / 'typed.py'}:typed"


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        ("fail=maybe", "fail: expected a boolean (true or false), got 'maybe'"),
        ("interval=abc", "interval: expected a number, got 'abc'"),
        ("count=1.5", "count: expected a whole number, got '1.5'"),
        ("mode=slow", 'mode: expected one of "fast", "safe", got \'slow\''),
        ("hosts=a,b", "hosts: expected a JSON array or null, got 'a,b'"),
    ],
)
def test_a_param_that_does_not_fit_its_annotation_is_refused_and_nothing_is_stored(
    cli, service: ExecutionService, pair: str, reason: str
) -> None:
    for command in (("run",), ("executions", "start")):
        done = cli(*command, "typed.py:typed", "-p", pair)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == f"error: malformed params for typed: {reason}"
    assert service.list_executions() == []


def test_command_line_texts_are_read_by_the_parameters_annotations(
    cli, service: ExecutionService
) -> None:
    done = cli(
        "run",
        "typed.py:typed",
        *("-p", "fail=yes", "-p", "version=1.10", "-p", "interval=2", "-p", "mode=fast"),
        *("-p", "note=42", "-p", 'hosts=["a","b"]', "-p", "size=LARGE"),
    )
    assert done.returncode == 0, done.stderr
    (execution,) = service.list_executions()
    assert execution.params == {
        "fail": True,
        "version": "1.10",
        "interval": 2,
        "mode": "fast",
        "note": "42",
        "hosts": ["a", "b"],
        "size": "l",
    }


def test_through_a_manager_the_same_texts_are_read_and_the_same_refusals_made(
    remote: Remote,  # noqa: F811 - the fixture imported above
) -> None:
    done = remote("executions", "start", TYPED, "-p", "interval=abc")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: malformed params for typed: interval: expected a number, got 'abc'"
    )
    assert remote.service.list_executions() == []
    done = remote("executions", "start", TYPED, "-p", "version=1.10", "-p", "fail=off")
    assert done.returncode == 0, done.stderr
    (execution,) = remote.service.list_executions()
    assert execution.params == {"version": "1.10", "fail": False}


def test_rest_refuses_params_that_do_not_fit_with_422(remote: Remote) -> None:  # noqa: F811
    with httpx.Client(
        base_url=f"{remote.url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as api:
        answer = api.post("/executions", json={"workflow": TYPED, "params": {"count": "3"}})
        assert answer.status_code == 422
        assert answer.json() == {
            "error": "malformed params for typed: count: expected a whole number, got '3'"
        }
        assert remote.service.list_executions() == []
        # The CLI's texts, given with the JSON it read from them:
        answer = api.post(
            "/executions",
            json={"workflow": TYPED, "params": {"count": "3"}, "param_texts": {"count": "3"}},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["params"] == {"count": 3}


def test_params_given_as_json_are_checked_too(
    cli, service: ExecutionService, tmp_path: Path
) -> None:
    done = cli("run", "typed.py:typed", "--params", json.dumps({"target": {"host": "h"}}))
    assert done.returncode == 2
    assert "target: expected Target with port" in done.stderr
    assert service.list_executions() == []
