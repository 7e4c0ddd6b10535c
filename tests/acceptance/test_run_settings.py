"""`dalsegno run --task-retries N --task-retry-interval S --dry-run` and `executions start`
with the same flags, in real CLI processes on both backends: exit codes, one-line
refusals that store nothing, a dry run SIGKILLed and resumed that stays dry and calls no
operation, and the same flags through a real manager (docs/design.md, "Retries" and
"Dry runs")."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from acceptance.test_manager_process import Managers, managers  # noqa: F401 - a fixture
from conftest import run_cli, start_cli

FLOWS = "settings_flows"


def executions(home: Path) -> list[dict[str, Any]]:
    listed = run_cli(home, "executions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


def document(home: Path, execution_id: str, *args: str) -> dict[str, Any]:
    got = run_cli(home, "executions", "get", execution_id, "--json", *args)
    assert got.returncode == 0, got.stderr
    found: dict[str, Any] = json.loads(got.stdout)
    return found


def calls(log: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            key = json.loads(line)["key"]
            found[key] = found.get(key, 0) + 1
    return found


@pytest.mark.parametrize("command", [("run",), ("executions", "start")])
def test_task_retries_make_a_flaky_run_complete_and_are_shown(
    home: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    log = tmp_path / "runs.log"
    failed = run_cli(home, *command, f"{FLOWS}:flaky", "-p", f"log={log}")
    assert failed.returncode == 1, failed.stderr
    log.unlink()

    passed = run_cli(
        home, *command, f"{FLOWS}:flaky", "-p", f"log={log}",
        "--task-retries", "2", "--task-retry-interval", "0.1",
    )  # fmt: skip

    assert passed.returncode == 0, passed.stderr
    assert calls(log) == {"flaky": 3}
    newest = executions(home)[0]
    assert (newest["task_retries"], newest["task_retry_interval"]) == (2, 0.1)
    assert newest["dry_run"] is False
    shown = run_cli(home, "executions", "get", newest["id"])
    assert "retries:  2 per task, every 0.1s" in shown.stdout


RETRIES = "task retries must be a whole number >= -1 (-1: forever), not "
INTERVAL = "the task retry interval must be a number of seconds >= 0"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--task-retries", "-2"), RETRIES + "-2"),
        (("--task-retries", "abc"), RETRIES + "'abc'"),
        (("--task-retries", "1.5"), RETRIES + "'1.5'"),
        (("--task-retry-interval", "-1"), INTERVAL + ", not -1.0"),
        (("--task-retry-interval", "soon"), INTERVAL + ", not 'soon'"),
        (("--task-retry-interval", "inf"), INTERVAL + ", not inf"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", [("run",), ("executions", "start")])
def test_bad_settings_are_refused_in_one_line_and_nothing_is_stored(
    home: Path, tmp_path: Path, command: tuple[str, ...], flags: tuple[str, ...], reason: str
) -> None:
    log = tmp_path / "runs.log"

    refused = run_cli(home, *command, f"{FLOWS}:flaky", "-p", f"log={log}", *flags)

    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {reason}")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert executions(home) == []
    assert not log.exists()


def test_forever_is_taken_and_stored(home: Path, tmp_path: Path) -> None:
    """-1 (retry forever) is given to the tasks that set no retries: a task that fails twice
    runs a third time, as with any number of retries that is large enough."""
    log = tmp_path / "runs.log"

    done = run_cli(home, "run", f"{FLOWS}:flaky", "-p", f"log={log}", "--task-retries", "-1",
                   "--task-retry-interval", "0")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "task retries: forever" in done.stdout
    assert calls(log) == {"flaky": 3}
    (execution,) = executions(home)
    assert execution["task_retries"] == -1
    task = run_cli(home, "tasks", "get", execution["id"], "flaky", "--json")
    assert json.loads(task.stdout)["max_retries"] == -1


def test_a_dry_run_killed_and_resumed_stays_dry_and_calls_nothing(
    home: Path, tmp_path: Path
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()  # a real run would block on it
    killed = start_cli(
        home, "run", f"{FLOWS}:dry_chain", "-p", f"log={log}", "-p", f"marker={marker}",
        "-p", f"hold={hold}", "--dry-run", DALSEGNO_CRASH_AT="before_operation:c",
    )  # fmt: skip
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    (execution,) = executions(home)
    assert (execution["status"], execution["dry_run"]) == ("started", True)

    plan = run_cli(home, "executions", "resume", execution["id"], "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["dry_run"] is True
    assert {task["key"]: task["action"] for task in planned["tasks"]} == {
        "a": "kept", "blk": "kept", "c": "re-run", "remote": "run",
    }  # fmt: skip
    text = run_cli(home, "executions", "resume", execution["id"], "--dry-run")
    assert "a dry-run execution: it stays dry" in text.stdout

    resumed = run_cli(home, "executions", "resume", execution["id"])

    assert resumed.returncode == 0, resumed.stderr
    assert not log.exists()  # no operation was ever called
    assert not marker.exists()
    final = document(home, execution["id"])
    assert (final["status"], final["dry_run"]) == ("completed", True)
    assert {task["key"]: task["status"] for task in final["tasks"]} == dict.fromkeys(
        ("a", "blk", "c", "remote"), "succeeded"
    )
    events = run_cli(home, "events", execution["id"], "--json")
    would = [
        json.loads(line)["task_key"]
        for line in events.stdout.splitlines()
        if json.loads(line)["message"].startswith("would run")
    ]
    assert would == ["a", "blk", "c", "remote"]  # c was simulated again after the kill
    listed = run_cli(home, "executions", "list")
    assert "completed (dry run)" in listed.stdout
    shown = run_cli(home, "executions", "get", execution["id"])
    assert "(dry run: no operation is called)" in shown.stdout


def test_run_dry_run_prints_what_each_task_would_run(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"

    done = run_cli(home, "run", f"{FLOWS}:flaky", "-p", f"log={log}", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert not log.exists()
    assert "[main/flaky] would run " in done.stdout
    assert f'would run settings_flows:plain with {{"log": "{log}", "fails": 2}}' in done.stdout


def test_the_flags_through_a_manager(
    managers: Managers,  # noqa: F811 - the fixture
    home: Path,
    tmp_path: Path,
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    _, url = managers.start()

    dry = run_cli(
        home, "--manager", url, "run", f"{FLOWS}:dry_chain", "-p", f"log={log}",
        "-p", f"marker={marker}", "-p", f"hold={hold}", "--dry-run",
    )  # fmt: skip
    flaky = run_cli(
        home, "--manager", url, "run", f"{FLOWS}:flaky", "-p", f"log={log}",
        "--task-retries", "2", "--task-retry-interval", "0",
    )  # fmt: skip
    refused = run_cli(
        home, "--manager", url, "executions", "start", f"{FLOWS}:flaky", "-p", f"log={log}",
        "--task-retries", "-5",
    )  # fmt: skip

    assert dry.returncode == 0, dry.stderr
    assert "would run" in dry.stdout
    assert flaky.returncode == 0, flaky.stderr
    assert calls(log) == {"flaky": 3}  # the dry run called nothing
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    listed = {e["workflow"].rpartition(":")[2]: e for e in executions(home)}
    assert set(listed) == {"dry_chain", "flaky"}
    assert listed["dry_chain"]["dry_run"] is True
    assert (listed["flaky"]["dry_run"], listed["flaky"]["task_retries"]) == (False, 2)


def test_workflows_list_shows_the_decorator_defaults(home: Path) -> None:
    listed = run_cli(home, "workflows", "list", "--workflows", "settings_flows.py", "--json")

    assert listed.returncode == 0, listed.stderr
    found = {
        w["name"]: (w["task_retries"], w["task_retry_interval"]) for w in json.loads(listed.stdout)
    }
    assert found["precedence"] == (2, 0.2)
    assert found["flaky"] == (None, None)
