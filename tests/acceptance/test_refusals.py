"""Refused requests (docs/interface.md, exit codes): exit 2, one line on stderr, nothing changed.

"Nothing changed" is checked on the store: the executions list, and each execution's
tasks, attempts and events, are the same before and after the refused command.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WORKFLOWS, start_cli
from dalsegno.service.executions import ExecutionService
from dalsegno.service.views import event_json, execution_json

Cli = Callable[..., subprocess.CompletedProcess[str]]

BEHAVIOUR = WORKFLOWS / "behaviour.py"
UNKNOWN = "no-such-execution"


def ref(name: str) -> str:
    return f"{BEHAVIOUR}:{name}"


def snapshot(service: ExecutionService) -> list[dict[str, Any]]:
    found = []
    for execution in service.list_executions():
        tasks = service.store.list_tasks(execution.id)
        found.append(
            {
                "execution": execution_json(execution, tasks),
                "attempts": service.store.list_attempts(execution.id),
                "events": [event_json(event) for event in service.events(execution.id)],
            }
        )
    return found


def refused(cli: Cli, service: ExecutionService, *args: str) -> str:
    """Run a command that must be refused; returns its one line of stderr."""
    before = snapshot(service)
    done = cli(*args)
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert snapshot(service) == before
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].strip()
    return lines[0]


@pytest.fixture
def ended(service: ExecutionService) -> dict[str, str]:
    """A completed and a failed execution, so that "nothing changed" has something to see."""
    found = {
        "completed": service.start(ref("deploy"), {"hosts": 1}).execution_id,
        "failed": service.start(ref("deploy"), {"hosts": 1, "fail_app": True}).execution_id,
    }
    for status, execution_id in found.items():
        assert service.get(execution_id)[0].status == status
    return found


@pytest.fixture
def running(
    home: Path, tmp_path: Path, service: ExecutionService, ended: dict[str, str]
) -> Iterator[str]:
    """An execution run by a live `dalsegno run`, its task `a` inside its operation."""
    gates = tmp_path / "gates"
    gates.mkdir()
    process = start_cli(home, "run", "behaviour.py:gated_chain", "-p", f"dir={gates}")
    try:
        deadline = time.monotonic() + 15
        while not (gates / "a.running").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "task a never started"
            time.sleep(0.02)
        (execution,) = [e for e in service.list_executions() if e.id not in ended.values()]
        yield execution.id
        (gates / "a.go").touch()
        assert process.wait(timeout=10) == 0, process.communicate()
    finally:
        (gates / "a.go").touch()
        if process.poll() is None:
            process.kill()
        process.communicate()


# unknown executions -------------------------------------------------------------------


def test_get_of_an_unknown_execution(cli: Cli, service: ExecutionService, ended: Any) -> None:
    assert UNKNOWN in refused(cli, service, "executions", "get", UNKNOWN)


def test_get_json_of_an_unknown_execution(cli: Cli, service: ExecutionService, ended: Any) -> None:
    assert UNKNOWN in refused(cli, service, "executions", "get", UNKNOWN, "--json")


def test_resume_of_an_unknown_execution(cli: Cli, service: ExecutionService, ended: Any) -> None:
    assert UNKNOWN in refused(cli, service, "executions", "resume", UNKNOWN)


def test_resume_dry_run_of_an_unknown_execution(
    cli: Cli, service: ExecutionService, ended: Any
) -> None:
    assert UNKNOWN in refused(cli, service, "executions", "resume", UNKNOWN, "--dry-run")


def test_cancel_of_an_unknown_execution(cli: Cli, service: ExecutionService, ended: Any) -> None:
    assert UNKNOWN in refused(cli, service, "executions", "cancel", UNKNOWN)


def test_events_of_an_unknown_execution(cli: Cli, service: ExecutionService, ended: Any) -> None:
    assert UNKNOWN in refused(cli, service, "events", UNKNOWN)


def test_events_follow_of_an_unknown_execution(
    cli: Cli, service: ExecutionService, ended: Any
) -> None:
    assert UNKNOWN in refused(cli, service, "events", UNKNOWN, "--follow")


# workflow references --------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "no_such_module_for_dalsegno:deploy",  # a module that does not exist
        "b_broken.py:deploy",  # a file whose import fails
        "b_broken:deploy",  # the same, as a module
        "no_such_file.py:deploy",  # a file that does not exist
        "behaviour.py:no_such_function",  # a name the file does not have
        "behaviour:no_such_function",
    ],
)
def test_a_workflow_reference_that_does_not_import(
    cli: Cli, service: ExecutionService, ended: Any, reference: str
) -> None:
    refused(cli, service, "run", reference)


@pytest.mark.parametrize(
    "reference",
    [
        "behaviour.py:not_a_workflow",  # a plain function
        "behaviour.py:echo",  # an operation
        "behaviour.py:HERE",  # not a function at all
    ],
)
def test_a_reference_that_is_not_a_workflow(
    cli: Cli, service: ExecutionService, ended: Any, reference: str
) -> None:
    refused(cli, service, "run", reference)


@pytest.mark.parametrize(
    "reference",
    [
        "behaviour.py",
        "behaviour.py:",
        ":deploy",
        "behaviour.py:1deploy",
        "behaviour.py:de-ploy",
        "",
    ],
)
def test_a_malformed_workflow_reference(
    cli: Cli, service: ExecutionService, ended: Any, reference: str
) -> None:
    refused(cli, service, "run", reference)


def test_executions_start_of_a_bad_reference(
    cli: Cli, service: ExecutionService, ended: Any
) -> None:
    refused(cli, service, "executions", "start", "behaviour.py:no_such_function")


# params -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "hosts"],  # no '='
        ["-p", "=2"],  # no key
        ["--params", "{hosts: 2}"],  # not JSON
        ["--params", "[1, 2]"],  # JSON, not an object
        ["--params", '"hosts=2"'],
        ["-p", "bogus=1"],  # a param the workflow does not take
        ["--params", '{"bogus": 1}'],
        ["-p", "hosts=1", "--params", '{"hosts": 1, "ctx": 2}'],
    ],
)
def test_malformed_params(cli: Cli, service: ExecutionService, ended: Any, args: list[str]) -> None:
    assert "param" in refused(cli, service, "run", "behaviour.py:deploy", *args).lower()


def test_a_missing_required_param(cli: Cli, service: ExecutionService, ended: Any) -> None:
    refused(cli, service, "run", "behaviour.py:params", "-p", "count=1")


# resume -----------------------------------------------------------------------------------


def test_resume_of_a_completed_execution(
    cli: Cli, service: ExecutionService, ended: dict[str, str]
) -> None:
    assert "completed" in refused(cli, service, "executions", "resume", ended["completed"])


def test_resume_dry_run_of_a_completed_execution(
    cli: Cli, service: ExecutionService, ended: dict[str, str]
) -> None:
    line = refused(cli, service, "executions", "resume", ended["completed"], "--dry-run")
    assert "completed" in line


def test_resume_of_a_running_execution(cli: Cli, service: ExecutionService, running: str) -> None:
    assert "running" in refused(cli, service, "executions", "resume", running)


def test_resume_reset_operations_of_a_running_execution(
    cli: Cli, service: ExecutionService, running: str
) -> None:
    refused(cli, service, "executions", "resume", running, "--reset-operations")


# cancel and events --------------------------------------------------------------------


def test_cancel_with_force_and_kill(cli: Cli, service: ExecutionService, running: str) -> None:
    line = refused(cli, service, "executions", "cancel", running, "--force", "--kill")
    assert "--force" in line
    assert "--kill" in line


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "", "0x10"])
def test_events_after_a_malformed_event_id(
    cli: Cli, service: ExecutionService, ended: dict[str, str], after: str
) -> None:
    refused(cli, service, "events", ended["completed"], "--after", after)


def test_list_with_an_unknown_status(cli: Cli, service: ExecutionService, ended: Any) -> None:
    assert "bogus" in refused(cli, service, "executions", "list", "--status", "bogus")
