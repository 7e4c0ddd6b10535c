"""The CLI contract of docs/interface.md: exit codes, `--json` fields, events, params, messages.

Every command runs as a real `python -m dalsegno` subprocess whose current directory is
tests/workflows, on the SQLite file of the test's DALSEGNO_HOME.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import WORKFLOWS, start_cli
from dalsegno.service.executions import ExecutionService

Cli = Callable[..., subprocess.CompletedProcess[str]]

BEHAVIOUR = WORKFLOWS / "behaviour.py"
EXECUTION_FIELDS = {
    "id",
    "workflow",
    "status",
    "params",
    "error",
    "created_at",
    "started_at",
    "ended_at",
}
TASK_FIELDS = {"id", "graph", "key", "operation", "agent", "status", "retries", "error", "result"}
EVENT_FIELDS = {
    "id",
    "execution_id",
    "graph",
    "task_key",
    "type",
    "level",
    "message",
    "created_at",
}


def ref(name: str) -> str:
    return f"{BEHAVIOUR}:{name}"


def only_execution_id(service: ExecutionService) -> str:
    (execution,) = service.list_executions()
    return execution.id


def get_json(cli: Cli, execution_id: str) -> dict[str, Any]:
    done = cli("executions", "get", execution_id, "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def events_json(cli: Cli, execution_id: str, *more: str) -> list[dict[str, Any]]:
    done = cli("events", execution_id, "--json", *more)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def parse_time(text: str) -> datetime:
    stamp = datetime.fromisoformat(text)
    assert stamp.tzinfo is not None, text
    return stamp


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# run: exit codes and messages -----------------------------------------------------------


def test_run_completed_exits_0_with_cloudify_style_messages(
    cli: Cli, service: ExecutionService
) -> None:
    done = cli("run", "behaviour.py:deploy", "-p", "hosts=2")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()

    def first(text: str) -> int:
        found = [number for number, line in enumerate(lines) if line.endswith(text)]
        assert found, f"{text!r} not in the output:\n{done.stdout}"
        return found[0]

    order = [
        first("Starting 'deploy' workflow execution"),
        first("Sending task 'vm0'"),
        first("Task started 'vm0'"),
        first("Task succeeded 'vm0'"),
        first("Sending task 'app'"),
        first("Task started 'app'"),
        first("Task succeeded 'app'"),
        first("'deploy' workflow execution succeeded"),
    ]
    assert order == sorted(order)
    assert first("Task succeeded 'vm1'") < first("Sending task 'app'")
    execution_id = only_execution_id(service)
    assert execution_id in done.stderr
    assert service.get(execution_id)[0].status == "completed"


def test_run_failed_exits_1(cli: Cli, service: ExecutionService) -> None:
    done = cli("run", "behaviour.py:deploy", "-p", "hosts=1", "-p", "fail_app=true")

    assert done.returncode == 1, done.stderr
    execution, _ = service.get(only_execution_id(service))
    assert execution.status == "failed"
    assert "'app'" in (execution.error or "")
    assert "app install failed" in (execution.error or "")
    assert "Task failed 'app' -> NonRecoverableError: app install failed" in done.stdout
    assert f"'deploy' workflow execution failed: {execution.error}" in done.stdout
    assert "Traceback" not in done.stderr


def test_run_cancelled_exits_3(cli: Cli, service: ExecutionService, store_url: str) -> None:
    done = cli(
        "run", "behaviour.py:self_cancel", "-p", f"store_url={store_url}", "-p", "linger=0.6"
    )

    assert done.returncode == 3, done.stderr
    execution_id = only_execution_id(service)
    assert service.get(execution_id)[0].status == "cancelled"
    assert "'self_cancel' workflow execution cancelled" in done.stdout
    assert {t.key: t.status for t in service.get(execution_id)[1]} == {
        "first": "succeeded",
        "second": "pending",
    }


def test_executions_start_without_a_manager_runs_here(cli: Cli, service: ExecutionService) -> None:
    done = cli("executions", "start", "behaviour.py:deploy", "-p", "hosts=1")

    assert done.returncode == 0, done.stderr
    assert service.get(only_execution_id(service))[0].status == "completed"


# params -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (
            ["name=hello world", "count=3", 'extra={"a": [1, 2.5], "b": null}'],
            {"name": "hello world", "count": 3, "extra": {"a": [1, 2.5], "b": None}},
        ),
        (['name="3"', "count=true", "extra=a=b"], {"name": "3", "count": True, "extra": "a=b"}),
        (["name=", "extra=null", "count=[1]"], {"name": "", "extra": None, "count": [1]}),
        (["name={not json", "count=-1.5e2"], {"name": "{not json", "count": -150.0}),
    ],
)
def test_p_values_are_json_when_they_parse_else_strings(
    cli: Cli, service: ExecutionService, pairs: list[str], expected: dict[str, Any]
) -> None:
    args = [arg for pair in pairs for arg in ("-p", pair)]
    done = cli("run", "behaviour.py:params", *args)

    assert done.returncode == 0, done.stderr
    execution_id = only_execution_id(service)
    assert get_json(cli, execution_id)["params"] == expected
    reported = [
        e.message for e in service.events(execution_id) if e.message.startswith("REPORT params ")
    ]
    assert [json.loads(m.removeprefix("REPORT params ")) for m in reported] == [expected]


def test_p_values_that_python_but_not_json_parses_are_strings(
    cli: Cli, service: ExecutionService
) -> None:
    """NaN and Infinity are not JSON (RFC 8259): such a VALUE is a string."""
    done = cli("run", "behaviour.py:params", "-p", "name=NaN", "-p", "count=-Infinity")

    assert done.returncode == 0, done.stderr
    assert service.get(only_execution_id(service))[0].params == {
        "name": "NaN",
        "count": "-Infinity",
    }


def test_params_json_and_p_together(cli: Cli, service: ExecutionService) -> None:
    done = cli(
        "run", "behaviour.py:params", "--params", '{"name": "web", "extra": [1]}', "-p", "count=2"
    )

    assert done.returncode == 0, done.stderr
    assert service.get(only_execution_id(service))[0].params == {
        "name": "web",
        "extra": [1],
        "count": 2,
    }


# executions list / get --------------------------------------------------------------------


@pytest.fixture
def three(service: ExecutionService) -> list[str]:
    """Three executions, oldest first: completed, failed, completed (with a retry)."""
    ids = [
        service.start(ref("deploy"), {"hosts": 1}).execution_id,
        service.start(ref("deploy"), {"hosts": 1, "fail_app": True}).execution_id,
        service.start(ref("probes"), {"fail_times": 1, "retries": 1, "interval": 0.0}).execution_id,
    ]
    assert [service.get(i)[0].status for i in ids] == ["completed", "failed", "completed"]
    return ids


def test_executions_list_json_newest_first(cli: Cli, three: list[str]) -> None:
    done = cli("executions", "list", "--json")

    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [e["id"] for e in listed] == list(reversed(three))
    for execution in listed:
        assert set(execution) >= EXECUTION_FIELDS  # docs/interface.md pins these; more may come
        assert isinstance(execution["id"], str)
        created = parse_time(execution["created_at"])
        assert parse_time(execution["started_at"]) >= created
        assert parse_time(execution["ended_at"]) >= parse_time(execution["started_at"])
    newest, failed, oldest = listed
    assert (oldest["workflow"], oldest["status"], oldest["error"]) == (
        ref("deploy"),
        "completed",
        None,
    )
    assert oldest["params"] == {"hosts": 1}
    assert failed["status"] == "failed"
    assert "app install failed" in failed["error"]
    assert failed["params"] == {"hosts": 1, "fail_app": True}
    assert newest["workflow"] == ref("probes")
    created = [parse_time(e["created_at"]) for e in listed]
    assert created == sorted(created, reverse=True)


def test_executions_list_status_filter(cli: Cli, three: list[str]) -> None:
    failed = json.loads(cli("executions", "list", "--status", "failed", "--json").stdout)
    completed = json.loads(cli("executions", "list", "--status", "completed", "--json").stdout)
    cancelled = json.loads(cli("executions", "list", "--status", "cancelled", "--json").stdout)

    assert [e["id"] for e in failed] == [three[1]]
    assert [e["id"] for e in completed] == [three[2], three[0]]
    assert cancelled == []


def test_executions_list_table(cli: Cli, three: list[str]) -> None:
    done = cli("executions", "list", COLUMNS="80")

    assert done.returncode == 0, done.stderr
    for execution_id in three:
        assert execution_id[:8] in done.stdout  # a short id: any unique prefix is taken
    assert all(len(line) <= 80 for line in done.stdout.splitlines())


def test_executions_get_json_with_tasks(cli: Cli, three: list[str]) -> None:
    deployed = get_json(cli, three[0])
    failed = get_json(cli, three[1])
    retried = get_json(cli, three[2])

    for found in (deployed, failed, retried):
        assert set(found) >= EXECUTION_FIELDS | {"tasks"}
        for task in found["tasks"]:
            assert set(task) >= TASK_FIELDS
            assert isinstance(task["id"], str)
            assert task["graph"] == "main"
            assert task["agent"] is None
    assert deployed["id"] == three[0]
    assert deployed["status"] == "completed"
    assert {t["key"]: (t["status"], t["result"]) for t in deployed["tasks"]} == {
        "vm0": ("succeeded", {"value": "10.0.0.0", "key": "vm0"}),
        "app": ("succeeded", {"value": "installed", "key": "app"}),
    }
    assert {t["operation"] for t in deployed["tasks"]} == {ref("echo")}
    app = next(t for t in failed["tasks"] if t["key"] == "app")
    assert (app["status"], app["error"], app["result"], app["retries"]) == (
        "failed",
        "NonRecoverableError: app install failed",
        None,
        0,
    )
    (probe,) = retried["tasks"]
    assert (probe["key"], probe["status"], probe["retries"]) == ("p0", "succeeded", 1)
    assert len({t["id"] for f in (deployed, failed, retried) for t in f["tasks"]}) == 5


def test_executions_get_table(cli: Cli, three: list[str]) -> None:
    done = cli("executions", "get", three[1])

    assert done.returncode == 0, done.stderr
    assert three[1] in done.stdout
    assert "app install failed" in done.stdout


# events --------------------------------------------------------------------------------


def test_events_json_one_object_per_line_oldest_first(cli: Cli, three: list[str]) -> None:
    found = events_json(cli, three[0])

    assert found
    for event in found:
        assert set(event) >= EVENT_FIELDS
        assert event["execution_id"] == three[0]
        assert isinstance(event["id"], str)
    stamps = [parse_time(e["created_at"]) for e in found]
    assert stamps == sorted(stamps)
    assert len({e["id"] for e in found}) == len(found)
    assert found[0]["message"] == "Starting 'deploy' workflow execution"
    assert (found[0]["graph"], found[0]["task_key"]) == (None, None)
    assert found[-1]["message"] == "'deploy' workflow execution succeeded"
    by_message = {e["message"]: e for e in found}
    started = by_message["Task started 'vm0'"]
    assert (started["graph"], started["task_key"], started["level"]) == ("main", "vm0", "info")
    assert started["type"]
    messages = [e["message"] for e in found]
    assert messages.index("Task succeeded 'vm0'") < messages.index("Task started 'app'")
    # --after: only what came after that event
    after = events_json(cli, three[0], "--after", found[2]["id"])
    assert after == found[3:]


def test_events_human_readable(cli: Cli, three: list[str]) -> None:
    done = cli("events", three[1])

    assert done.returncode == 0, done.stderr
    assert "Task failed 'app' -> NonRecoverableError: app install failed" in done.stdout
    assert "'deploy' workflow execution failed" in done.stdout


def test_events_follow_ends_when_the_execution_ends(
    home: Path, cli: Cli, service: ExecutionService, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    run = start_cli(home, "run", "behaviour.py:gated_chain", "-p", f"dir={gates}")
    follow: subprocess.Popen[str] | None = None
    try:
        wait_for((gates / "a.running").exists, what="task a to start")
        execution_id = only_execution_id(service)
        follow = start_cli(home, "events", execution_id, "--follow", "--json")
        time.sleep(1.0)
        assert follow.poll() is None, "--follow ended while the execution runs"
        (gates / "a.go").touch()
        out, err = follow.communicate(timeout=10)
        assert follow.returncode == 0, err
        assert run.wait(timeout=10) == 0
    finally:
        (gates / "a.go").touch()
        for process in (run, follow):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.communicate()
    followed = [json.loads(line) for line in out.splitlines()]
    assert followed == events_json(cli, execution_id)
    assert followed[-1]["message"] == "'gated_chain' workflow execution succeeded"
