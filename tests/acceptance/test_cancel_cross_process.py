"""Cancel across processes: `dalsegno run` in one subprocess, `dalsegno executions cancel`
in another. The run notices within a second of the cancel command's return, carries out the
mode asked (docs/design.md section 4) and exits 3."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import WORKFLOWS, start_cli
from dalsegno.service.executions import ExecutionService
from dalsegno.service.views import event_json, execution_json

Cli = Callable[..., subprocess.CompletedProcess[str]]

NOTICE = 1.0  # seconds from the cancel command's return to the run process's exit
FLAGS = {"cancel": [], "force": ["--force"], "kill": ["--kill"]}
ASKED = {"cancel": "cancelling", "force": "force_cancelling", "kill": "kill_cancelling"}
LEFT = {
    "cancel": {"a": "succeeded", "b": "pending", "c": "pending"},
    "force": {"a": "started", "b": "pending", "c": "pending"},
    "kill": {"a": "failed", "b": "pending", "c": "pending"},
}


class Run:
    """A `dalsegno run` of `gated_chain` whose task `a` is inside its operation."""

    def __init__(self, home: Path, gates: Path, service: ExecutionService) -> None:
        self.gates = gates
        self.process = start_cli(home, "run", "behaviour.py:gated_chain", "-p", f"dir={gates}")
        deadline = time.monotonic() + 15
        while not (gates / "a.running").exists():
            if self.process.poll() is not None:
                pytest.fail(f"the run ended early: {self.process.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("task a never started")
            time.sleep(0.01)
        (execution,) = service.list_executions()
        self.execution_id = execution.id

    def open_gate(self) -> None:
        (self.gates / "a.go").touch()

    def stop(self) -> None:
        self.open_gate()
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def run(home: Path, tmp_path: Path, service: ExecutionService) -> Iterator[Run]:
    gates = tmp_path / "gates"
    gates.mkdir()
    started = Run(home, gates, service)
    yield started
    started.stop()


@pytest.mark.parametrize("mode", ["cancel", "force", "kill"])
def test_a_cancel_from_another_process(
    cli: Cli, service: ExecutionService, run: Run, mode: str
) -> None:
    done = cli("executions", "cancel", run.execution_id, *FLAGS[mode])
    returned = time.monotonic()

    assert done.returncode == 0, done.stderr
    assert f"Execution {run.execution_id} {ASKED[mode]}" in done.stdout
    if mode == "cancel":
        # A graceful cancel waits for the running task: let it end once the run has seen
        # the cancel (the run polls the store every 0.25 s).
        time.sleep(0.4)
        assert run.process.poll() is None
        run.open_gate()
    try:
        code = run.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not end after a {mode} cancel")
    took = time.monotonic() - returned
    out, err = run.process.communicate()

    assert code == 3, err
    assert took < NOTICE, f"the run took {took:.2f}s to end after the {mode} cancel returned"
    execution, tasks = service.get(run.execution_id)
    assert (execution.status, execution.error) == ("cancelled", None)
    assert {task.key: task.status for task in tasks} == LEFT[mode]
    assert f"Execution {run.execution_id} cancelled" in err.splitlines()[-1]
    assert "'gated_chain' workflow execution cancelled" in out
    started = [e.task_key for e in service.events(run.execution_id) if e.type == "task_started"]
    assert started == ["a"]
    if mode == "kill":
        assert next(t for t in tasks if t.key == "a").error == "killed by cancel"


def test_cancel_twice_in_the_same_mode_is_accepted(
    cli: Cli, service: ExecutionService, run: Run
) -> None:
    first = cli("executions", "cancel", run.execution_id)
    second = cli("executions", "cancel", run.execution_id)

    assert (first.returncode, second.returncode) == (0, 0), second.stderr
    assert service.get(run.execution_id)[0].status == "cancelling"
    run.open_gate()
    assert run.process.wait(timeout=10) == 3


def test_a_cancel_can_be_raised_to_kill(cli: Cli, service: ExecutionService, run: Run) -> None:
    assert cli("executions", "cancel", run.execution_id).returncode == 0
    assert cli("executions", "cancel", run.execution_id, "--kill").returncode == 0

    assert run.process.wait(timeout=10) == 3
    statuses = {t.key: t.status for t in service.get(run.execution_id)[1]}
    assert statuses == LEFT["kill"]


def test_cancel_of_a_completed_execution_exits_2(cli: Cli, service: ExecutionService) -> None:
    execution_id = service.start(f"{WORKFLOWS / 'behaviour.py'}:deploy", {"hosts": 1}).execution_id
    execution, tasks = service.get(execution_id)
    before = (
        execution_json(execution, tasks),
        [event_json(e) for e in service.events(execution_id)],
    )

    for flags in FLAGS.values():
        done = cli("executions", "cancel", execution_id, *flags)
        assert done.returncode == 2, done.stdout
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "completed" in done.stderr

    execution, tasks = service.get(execution_id)
    after = (
        execution_json(execution, tasks),
        [event_json(e) for e in service.events(execution_id)],
    )
    assert after == before
