"""Execution-wide retry settings and dry runs (issue 15, items 5 and 6; docs/design.md,
"Retries" and "Dry runs"), on both backends: the precedence of the retry settings, the
settings and the dry-run marker stored with the execution and read again by a manual
resume, a resume of a crashed execution and a manager's takeover of a killed process."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WORKFLOWS, start_cli
from dalsegno.engine.runner import EngineConfig
from dalsegno.manager.manager import Manager, ManagerConfig
from dalsegno.model.errors import RefusedError
from dalsegno.model.records import TaskRecord
from dalsegno.service.executions import ExecutionService
from dalsegno.service.views import execution_json
from dalsegno.store import Store

FLOWS = WORKFLOWS / "settings_flows.py"


def ref(name: str) -> str:
    return f"{FLOWS}:{name}"


def calls(log: Path) -> dict[str, int]:
    """How many times each task's operation was called (the log's lines)."""
    found: dict[str, int] = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            key = json.loads(line)["key"]
            found[key] = found.get(key, 0) + 1
    return found


def tasks_of(service: ExecutionService, execution_id: str) -> dict[str, TaskRecord]:
    return {
        (task.key if task.graph == "main" else f"{task.graph}/{task.key}"): task
        for task in service.get(execution_id)[1]
    }


def settings_of(service: ExecutionService, execution_id: str) -> dict[str, tuple[int, float]]:
    """Each task's stored retries and retry interval."""
    return {
        key: (task.max_retries, task.retry_interval)
        for key, task in tasks_of(service, execution_id).items()
    }


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def managers(store: Store) -> Iterator[Callable[[EngineConfig], Manager]]:
    started: list[Manager] = []

    def make(config: EngineConfig) -> Manager:
        manager = Manager(ExecutionService(store, config), ManagerConfig(grace=0.0))
        manager.start()
        started.append(manager)
        return manager

    yield make
    for manager in started:
        manager.stop(0.5)


# precedence ------------------------------------------------------------------------


def test_the_task_then_its_operation_then_the_execution_then_the_default(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    run = service.start(
        ref("precedence"), {"log": str(log)}, dry_run=True, task_retries=3, task_retry_interval=0.3
    )

    assert run.status == "completed"
    assert settings_of(service, run.execution_id) == {
        "own": (5, 0.5),  # g.add(retries=5, retry_interval=0.5)
        "op": (4, 0.4),  # @operation(retries=4, retry_interval=0.4)
        "exec": (3, 0.3),  # the execution's, over the workflow's 2 and 0.2
        "agent_task": (3, 0.3),
    }
    execution = service.find(run.execution_id)
    assert (execution.task_retries, execution.task_retry_interval) == (3, 0.3)


def test_the_workflow_decorator_fills_what_the_execution_does_not_set(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    both = service.start(ref("precedence"), {"log": str(log)}, dry_run=True)
    interval_only = service.start(
        ref("precedence"), {"log": str(log)}, dry_run=True, task_retry_interval=0.7
    )

    assert settings_of(service, both.execution_id)["exec"] == (2, 0.2)
    assert settings_of(service, interval_only.execution_id)["exec"] == (2, 0.7)
    assert settings_of(service, interval_only.execution_id)["op"] == (4, 0.4)
    document = execution_json(service.find(interval_only.execution_id))
    assert (document["task_retries"], document["task_retry_interval"]) == (2, 0.7)


def test_the_built_in_default_comes_last(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    service = ExecutionService(
        store,
        EngineConfig(
            lease_timeout=3.0, poll_interval=0.05, default_retries=7, default_retry_interval=9
        ),
    )
    plain = service.start(ref("undecorated"), {"log": str(log)}, dry_run=True)
    given = service.start(ref("undecorated"), {"log": str(log)}, dry_run=True, task_retries=1)

    assert settings_of(service, plain.execution_id) == {
        "own": (5, 0.5),
        "op": (4, 0.4),
        "exec": (7, 9.0),
        "agent_task": (7, 9.0),
    }
    assert settings_of(service, given.execution_id)["exec"] == (1, 9.0)
    assert service.find(plain.execution_id).task_retries is None


def test_execution_retries_make_a_flaky_task_pass(
    service: ExecutionService, tmp_path: Path
) -> None:
    without, with_retries = tmp_path / "without.log", tmp_path / "with.log"

    failed = service.start(ref("flaky"), {"log": str(without)})
    passed = service.start(
        ref("flaky"), {"log": str(with_retries)}, task_retries=2, task_retry_interval=0.1
    )

    assert failed.status == "failed"
    assert calls(without) == {"flaky": 1}
    assert passed.status == "completed"
    assert calls(with_retries) == {"flaky": 3}
    assert tasks_of(service, passed.execution_id)["flaky"].retries == 2


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"task_retries": -2}, "task retries must be a whole number >= -1"),
        ({"task_retries": 1.5}, "task retries must be a whole number >= -1"),
        ({"task_retries": True}, "task retries must be a whole number >= -1"),
        ({"task_retries": "3"}, "task retries must be a whole number >= -1"),
        ({"task_retry_interval": -0.5}, "the task retry interval must be a number of seconds"),
        ({"task_retry_interval": float("nan")}, "the task retry interval must be a number"),
        ({"task_retry_interval": "1"}, "the task retry interval must be a number"),
        ({"dry_run": "yes"}, "dry_run must be true or false"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_stored(
    service: ExecutionService, tmp_path: Path, settings: dict[str, Any], reason: str
) -> None:
    log = tmp_path / "runs.log"
    for start in (service.start, service.create):
        with pytest.raises(RefusedError, match=reason):
            start(ref("flaky"), {"log": str(log)}, **settings)
    assert service.list_executions() == []
    assert not log.exists()


def test_forever_is_accepted_and_stored(service: ExecutionService, tmp_path: Path) -> None:
    created = service.create(ref("flaky"), {"log": str(tmp_path / "l")}, task_retries=-1)

    assert service.find(created.id).task_retries == -1
    assert execution_json(service.find(created.id))["task_retries"] == -1


# the settings are the execution's at every take-up ---------------------------------------


def test_a_manual_resume_builds_new_graphs_with_the_start_settings(
    store: Store, tmp_path: Path
) -> None:
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    gate.touch()
    first = ExecutionService(store, EngineConfig(lease_timeout=3.0, poll_interval=0.05))
    run = first.start(
        ref("staged"), {"log": str(log), "gate": str(gate)}, task_retries=2, task_retry_interval=0
    )
    assert run.status == "failed"
    assert "later/flaky" not in tasks_of(first, run.execution_id)

    gate.unlink()
    # another process, whose own default would give the new graph's task no retry at all
    later = ExecutionService(
        store, EngineConfig(lease_timeout=3.0, poll_interval=0.05, default_retries=0)
    )
    resumed = later.resume(run.execution_id)

    assert resumed.status == "completed"
    assert settings_of(later, run.execution_id)["later/flaky"] == (2, 0.0)
    assert calls(log) == {"gate": 2, "flaky": 3}


def test_a_crashed_execution_resumed_by_hand_keeps_its_settings(
    store: Store, tmp_path: Path
) -> None:
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    config = EngineConfig(lease_timeout=0.5, poll_interval=0.02)
    service = ExecutionService(store, config)

    def crash(point: str, _graph: str, key: str) -> bool:
        return point == "before_operation" and key == "gate"

    run = service.start(
        ref("staged"),
        {"log": str(log), "gate": str(gate)},
        task_retries=2,
        task_retry_interval=0,
        crash_hook=crash,
    )
    assert run.outcome.abandoned
    time.sleep(0.6)  # its lease expires: a crashed execution

    resumed = service.resume(run.execution_id)

    assert resumed.status == "completed"
    assert settings_of(service, run.execution_id)["later/flaky"] == (2, 0.0)
    assert calls(log) == {"gate": 1, "flaky": 3}


def test_a_manager_takes_a_killed_run_over_with_its_settings(
    home: Path, managers: Callable[[EngineConfig], Manager], service: ExecutionService,
    tmp_path: Path,
) -> None:  # fmt: skip
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    proc = start_cli(
        home, "run", f"{FLOWS}:staged", "-p", f"log={log}", "-p", f"gate={gate}",
        "--task-retries", "2", "--task-retry-interval", "0",
        DALSEGNO_CRASH_AT="before_operation:gate",
    )  # fmt: skip
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (execution,) = service.list_executions()
    assert execution.status.value == "started"

    managers(EngineConfig(lease_timeout=3.0, poll_interval=0.05, default_retries=0))
    wait_for(lambda: service.find(execution.id).status.value == "completed")

    assert settings_of(service, execution.id)["later/flaky"] == (2, 0.0)
    assert calls(log) == {"gate": 1, "flaky": 3}


# dry runs ------------------------------------------------------------------------------


def test_a_dry_run_calls_no_operation_and_each_task_says_what_it_would_run(
    service: ExecutionService, tmp_path: Path
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()  # a real run would block on it
    params = {"log": str(log), "marker": str(marker), "hold": str(hold)}

    run = service.start(ref("dry_chain"), params, dry_run=True)

    assert run.status == "completed"
    assert not log.exists()
    assert not marker.exists()
    tasks = tasks_of(service, run.execution_id)
    assert {key: task.status.value for key, task in tasks.items()} == dict.fromkeys(
        ("a", "blk", "c", "remote"), "succeeded"
    )
    assert tasks["remote"].agent == "web"  # stored as written, never sent to its queue
    said = [
        (event.task_key, event.message)
        for event in service.events(run.execution_id)
        if event.message.startswith("would run")
    ]
    kwargs = json.dumps({"log": str(log), "fails": 5})
    assert said == [
        ("a", f"would run {ref('plain')} with {json.dumps({'log': str(log)})}"),
        ("blk", f"would run {ref('block')} with {json.dumps(params)}"),
        ("c", f"would run {ref('plain')} with {kwargs}"),
        ("remote", f"would run {ref('plain')} with {json.dumps({'log': str(log)})}"),
    ]
    assert service.find(run.execution_id).dry_run is True
    assert execution_json(service.find(run.execution_id))["dry_run"] is True
    remote = [e.message for e in service.events(run.execution_id) if e.task_key == "remote"]
    assert not any("queue" in message for message in remote), remote


def test_a_crashed_dry_run_resumed_by_hand_stays_dry(store: Store, tmp_path: Path) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    params = {"log": str(log), "marker": str(marker), "hold": str(hold)}
    service = ExecutionService(store, EngineConfig(lease_timeout=0.5, poll_interval=0.02))

    def crash(point: str, _graph: str, key: str) -> bool:
        return point == "before_operation" and key == "c"

    run = service.start(ref("dry_chain"), params, dry_run=True, crash_hook=crash)
    assert run.outcome.abandoned
    time.sleep(0.6)
    plan = service.plan(run.execution_id)
    # `c` runs a non-resumable operation, found `started`: in a real run it would fail;
    # nothing was called, so the dry run simulates it again; `remote` is no agent's
    assert plan.dry_run is True
    assert {task.key: task.action for task in plan.tasks} == {
        "a": "kept",
        "blk": "kept",
        "c": "re-run",
        "remote": "run",
    }

    resumed = service.resume(run.execution_id)

    assert resumed.status == "completed"
    assert not log.exists()
    assert service.find(run.execution_id).dry_run is True
    messages = [e.message for e in service.events(run.execution_id) if e.task_key == "remote"]
    assert any(message.startswith("would run") for message in messages)


def test_a_manager_takes_a_killed_dry_run_over_and_it_stays_dry(
    home: Path, managers: Callable[[EngineConfig], Manager], service: ExecutionService,
    tmp_path: Path,
) -> None:  # fmt: skip
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    proc = start_cli(
        home, "run", f"{FLOWS}:dry_chain", "-p", f"log={log}", "-p", f"marker={marker}",
        "-p", f"hold={hold}", "--dry-run", DALSEGNO_CRASH_AT="before_operation:c",
    )  # fmt: skip
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (execution,) = service.list_executions()
    assert execution.dry_run is True

    managers(EngineConfig(lease_timeout=3.0, poll_interval=0.05))
    wait_for(lambda: service.find(execution.id).status.value == "completed")

    assert not log.exists()
    assert not marker.exists()
    assert {key: t.status.value for key, t in tasks_of(service, execution.id).items()} == (
        dict.fromkeys(("a", "blk", "c", "remote"), "succeeded")
    )
