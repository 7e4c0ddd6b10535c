"""The read commands' new flags, in real `python -m dalsegno` processes: `executions list`
filters and limits, `executions get` filters and `--task`, `tasks list` and `tasks get`
(why a task failed: its attempts with their tracebacks), `events` filters; each one the
same through a manager; refusals are one line and exit 2."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from acceptance.test_cli_remote import Remote, remote  # noqa: F401 - the fixture
from conftest import WORKFLOWS
from dalsegno.service.executions import ExecutionService

READS = WORKFLOWS / "reads.py"


def ref(name: str) -> str:
    return f"{READS}:{name}"


def json_of(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def flaky(service: ExecutionService) -> str:
    result = service.start(ref("flaky"))
    assert result.status == "failed"
    return result.execution_id


def test_executions_list_filters_and_limits(cli, service: ExecutionService) -> None:
    made = [service.start(ref("many"), {"n": 2}).execution_id for _ in range(5)]
    failed = service.start(ref("flaky")).execution_id
    listed = json_of(cli("executions", "list", "--json"))
    assert [e["id"] for e in listed] == [failed, *reversed(made)]
    assert [e["id"] for e in json_of(cli("executions", "list", "--limit", "2", "--json"))] == [
        failed,
        made[-1],
    ]
    only = json_of(cli("executions", "list", "--status", "failed", "--json"))
    assert [e["id"] for e in only] == [failed]
    both = json_of(cli("executions", "list", "--status", "failed,completed", "--json"))
    assert len(both) == 6
    of_many = json_of(cli("executions", "list", "--workflow", ref("many"), "--json"))
    assert [e["id"] for e in of_many] == list(reversed(made))
    by_prefix = json_of(cli("executions", "list", "--search", made[2][:6], "--json"))
    assert made[2] in [e["id"] for e in by_prefix]
    by_name = json_of(cli("executions", "list", "-s", "reads.py:flaky", "--json"))
    assert [e["id"] for e in by_name] == [failed]
    assert json_of(cli("executions", "list", "--since", "1h", "--json")) == listed
    assert json_of(cli("executions", "list", "--since", "2999-01-01T00:00:00Z", "--json")) == []
    # every page walked: more than one page of 1000 is not needed to prove it, a limit is
    assert len(json_of(cli("executions", "list", "--limit", "0", "--json"))) == 6


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--since", "yesterday"), "a time is an age such as 30d"),
        (("--status", "done"), "unknown status 'done'"),
        (("--limit", "-1"), "-1 is not in the range x>=0"),
    ],
)
def test_executions_list_refuses_malformed_filters_in_one_line(
    cli, args: tuple[str, ...], reason: str
) -> None:
    done = cli("executions", "list", *args)
    assert done.returncode == 2
    assert reason in done.stderr


def test_executions_get_filters_its_tasks(cli, flaky: str) -> None:
    whole = json_of(cli("executions", "get", flaky, "--json"))
    assert {(t["graph"], t["key"]) for t in whole["tasks"]} == {
        ("docs", "build"),
        ("main", "build"),
        ("main", "lint"),
        ("main", "report"),
    }
    failed = json_of(cli("executions", "get", flaky, "--status", "failed", "--json"))
    assert [t["key"] for t in failed["tasks"]] == ["lint"]
    assert failed["id"] == flaky and failed["status"] == "failed"
    docs = json_of(cli("executions", "get", flaky, "--graph", "docs", "--json"))
    assert [(t["graph"], t["key"]) for t in docs["tasks"]] == [("docs", "build")]
    first = json_of(cli("executions", "get", flaky, "--limit", "2", "--json"))
    assert len(first["tasks"]) == 2


def test_executions_get_table_shows_a_hundred_tasks_unless_told(
    cli, service: ExecutionService
) -> None:
    execution_id = service.start(ref("many"), {"n": 250}).execution_id
    table = cli("executions", "get", execution_id)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("main ")]
    assert len(rows) == 100
    assert "the first 100 tasks: --limit 0 shows them all" in table.stdout
    everything = cli("executions", "get", execution_id, "--limit", "0")
    assert len([line for line in everything.stdout.splitlines() if line.startswith("main ")]) == 250


def test_tasks_get_says_why_a_task_failed_with_each_attempt(cli, flaky: str) -> None:
    build = json_of(cli("tasks", "get", flaky, "build", "--graph", "main", "--json"))
    assert build["status"] == "succeeded"
    assert build["result"] == {"objects": 42}
    assert [a["number"] for a in build["attempts"]] == [1, 2, 3]
    assert [a["outcome"] for a in build["attempts"]] == ["failed", "failed", "succeeded"]
    assert "compiler crashed on attempt 1" in build["attempts"][0]["error"]
    assert "Traceback (most recent call last)" in build["attempts"][0]["error"]
    assert build["attempts"][2]["result"] == {"objects": 42}
    assert build["attempts"][0]["result"] is None
    assert all(a["worker"] and a["started_at"] and a["ended_at"] for a in build["attempts"])
    assert "compiling, attempt 3" in [e["message"] for e in build["events"]]
    lint = json_of(cli("executions", "get", flaky, "--task", "lint", "--json"))
    assert lint["status"] == "failed"
    assert lint["error"] == "NonRecoverableError: lint failed: {'E501': 3}"
    assert "raise NonRecoverableError(msg)" in lint["attempts"][0]["error"]
    table = cli("tasks", "get", flaky, "lint")
    assert table.returncode == 0
    assert "Attempts (1)" in table.stdout
    assert "Traceback (most recent call last)" in table.stdout
    assert "style problems found" in table.stdout


def test_a_task_key_in_two_graphs_needs_its_graph_and_an_unknown_one_is_refused(
    cli, flaky: str
) -> None:
    both = cli("tasks", "get", flaky, "build")
    assert both.returncode == 2
    assert both.stderr.strip() == (
        "error: task key 'build' is in several graphs (docs, main): name one with its graph"
    )
    unknown = cli("tasks", "get", flaky, "deploy")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == f"error: unknown task 'deploy' of execution {flaky}"
    nobody = cli("tasks", "get", "ffffffffffffffff", "lint")
    assert nobody.returncode == 2
    assert nobody.stderr.strip() == "error: unknown execution: ffffffffffffffff"


def test_tasks_list_pages_and_filters_without_results(cli, service: ExecutionService) -> None:
    execution_id = service.start(ref("many"), {"n": 1200}).execution_id
    listed = json_of(cli("tasks", "list", execution_id, "--limit", "0", "--json"))
    assert [t["key"] for t in listed] == [f"t{i:05d}" for i in range(1200)]  # two pages
    assert all("result" not in task for task in listed)
    assert set(listed[0]) >= {"id", "graph", "key", "status", "retries", "attempt_count"}
    some = json_of(cli("tasks", "list", execution_id, "--key", "t0110", "--json"))
    assert [t["key"] for t in some] == [f"t0110{i}" for i in range(10)]
    assert len(json_of(cli("tasks", "list", execution_id, "--json"))) == 100


def test_events_filters_by_task_level_and_type(cli, flaky: str) -> None:
    def events(*args: str) -> list[dict[str, Any]]:
        done = cli("events", flaky, "--json", *args)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    everything = events()
    lint = events("--task", "lint")
    assert lint and {e["task_key"] for e in lint} == {"lint"}
    assert lint == [e for e in everything if e["task_key"] == "lint"]
    errors = events("--level", "error")
    assert errors and {e["level"] for e in errors} == {"error"}
    warnings = events("--level", "warning")
    assert {e["level"] for e in warnings} == {"warning", "error"}
    assert "style problems found" in [e["message"] for e in warnings]
    failures = events("--type", "task_failed")
    assert [e["task_key"] for e in failures] == ["lint"]
    docs = events("--graph", "docs", "--task", "build")
    assert {(e["graph"], e["task_key"]) for e in docs} == {("docs", "build")}
    refused = cli("events", flaky, "--level", "loud")
    assert refused.returncode == 2


def test_through_a_manager_the_read_commands_print_what_local_mode_prints(
    remote: Remote,  # noqa: F811 - the fixture imported above
) -> None:
    flaky = remote.service.start(ref("flaky")).execution_id
    remote.service.start(ref("many"), {"n": 3})
    commands = [
        ("executions", "list", "--json"),
        ("executions", "list", "--limit", "1", "--status", "failed", "--json"),
        ("executions", "list", "--search", "reads.py:many", "--json"),
        ("executions", "list"),
        ("executions", "get", flaky, "--status", "failed", "--json"),
        ("executions", "get", flaky, "--task", "lint", "--json"),
        ("tasks", "list", flaky, "--json"),
        ("tasks", "list", flaky, "--graph", "main"),
        ("tasks", "get", flaky, "build", "--graph", "main", "--json"),
        ("tasks", "get", flaky, "lint"),
        ("events", flaky, "--level", "warning", "--json"),
        ("events", flaky, "--type", "task_failed", "--type", "workflow_failed", "--json"),
        ("events", flaky, "--task", "build", "--graph", "main"),
    ]
    for args in commands:
        here, there = remote.local(*args), remote(*args)
        assert there.returncode == 0, (args, there.stderr)
        assert here.returncode == 0, (args, here.stderr)
        assert _steady(there.stdout) == _steady(here.stdout), args
    refused = remote("tasks", "get", flaky, "build")
    assert refused.returncode == 2
    assert "name one with its graph" in refused.stderr


def _steady(text: str) -> str:
    """Durations are computed from timestamps the JSON rounds to microseconds."""
    import re

    return re.sub(r"\b\d+\.\d{2}s\b", "<duration>", text)


def test_a_task_waiting_for_its_retry_says_when_it_runs_again(
    cli, service: ExecutionService
) -> None:
    import threading
    from datetime import datetime

    thread = threading.Thread(target=service.start, args=(ref("patient"),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while True:
        found = service.list_executions()
        tasks = service.get(found[0].id)[1] if found else []
        if tasks and tasks[0].status.value == "rescheduled":
            break
        assert time.monotonic() < deadline, "the task never waited for its retry"
        time.sleep(0.02)
    try:
        shown = json_of(cli("tasks", "get", found[0].id, "build", "--json"))
        assert shown["status"] == "rescheduled"
        due = datetime.fromisoformat(shown["retry_at"]).timestamp()
        assert time.time() + 20 < due < time.time() + 31
        table = cli("tasks", "get", found[0].id, "build")
        assert "next run:" in table.stdout
    finally:
        service.cancel(found[0].id, "force")
        thread.join(30)
