"""The manager core on a real SQLite file: claims, takeovers, graceful hand-over, fencing.

Executions a killed `dalsegno run` left behind are made by real subprocesses (SIGKILL);
the managers run in this process, each with its own owner identity where it matters.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import WORKFLOWS, start_cli
from dalsegno.engine.runner import EngineConfig
from dalsegno.manager.manager import Manager, ManagerConfig
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store

sys.path.insert(0, str(WORKFLOWS))


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def runs(log: Path) -> dict[str, list[bool]]:
    found: dict[str, list[bool]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            found.setdefault(entry["key"], []).append(entry["resume"])
    return found


@pytest.fixture
def managers(service: ExecutionService) -> Iterator[Callable[..., Manager]]:
    started: list[Manager] = []

    def make(**config: object) -> Manager:
        manager = Manager(service, ManagerConfig(**config))  # type: ignore[arg-type]
        manager.start()
        started.append(manager)
        return manager

    yield make
    for manager in started:
        manager.stop(0.5)


def status_of(service: ExecutionService, execution_id: str) -> str:
    return service.find(execution_id).status.value


def test_pending_executions_are_claimed_and_run(
    service: ExecutionService, managers: Callable[..., Manager], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    ids = [service.create("crashy:chain", {"log": str(log)}).id for _ in range(3)]
    assert {status_of(service, i) for i in ids} == {"pending"}
    managers()
    wait_for(lambda: all(status_of(service, i) == "completed" for i in ids))
    assert runs(log) == {"a": [False] * 3, "b": [False] * 3, "c": [False] * 3}


def test_a_killed_run_is_taken_over_at_once_and_nothing_completed_runs_again(
    home: Path, service: ExecutionService, managers: Callable[..., Manager], tmp_path: Path
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    proc = start_cli(
        home, "run", "crashy:blocking", "-p", f"log={log}", "-p", f"marker={marker}",
        "-p", f"hold={hold}", DALSEGNO_LEASE_TIMEOUT="600",
    )  # fmt: skip
    wait_for(marker.exists)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    hold.unlink()
    (execution,) = service.list_executions()
    assert execution.status.value == "started"
    began = time.monotonic()
    managers()
    wait_for(lambda: status_of(service, execution.id) == "completed")
    assert time.monotonic() - began < 5  # a dead local owner's lease is void at once
    assert runs(log) == {"a": [False], "blk": [False, True], "c": [False]}
    messages = [event.message for event in service.events(execution.id)]
    assert any("taken over by manager" in message for message in messages)


def test_a_non_resumable_workflow_taken_over_fails_with_the_reason(
    home: Path, service: ExecutionService, managers: Callable[..., Manager], tmp_path: Path
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    proc = start_cli(
        home, "run", "crashy:oneshot", "-p", f"log={log}", "-p", f"marker={marker}",
        "-p", f"hold={hold}",
    )  # fmt: skip
    wait_for(marker.exists)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    hold.unlink()
    (execution,) = service.list_executions()
    managers()
    wait_for(lambda: status_of(service, execution.id) == "failed")
    assert service.find(execution.id).error == (
        "Cannot resume - workflow not resumable: crashy:oneshot"
    )
    assert runs(log) == {"a": [False], "blk": [False]}


def test_a_cancelling_execution_whose_owner_died_ends_cancelled(
    home: Path, service: ExecutionService, store: Store, managers: Callable[..., Manager],
    tmp_path: Path,
) -> None:  # fmt: skip
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    proc = start_cli(
        home, "run", "crashy:blocking", "-p", f"log={log}", "-p", f"marker={marker}",
        "-p", f"hold={hold}", DALSEGNO_LEASE_TIMEOUT="600",
    )  # fmt: skip
    wait_for(marker.exists)
    proc.send_signal(signal.SIGSTOP)  # it cannot carry the cancel out...
    (execution,) = service.list_executions()
    service.cancel(execution.id, "cancel")
    proc.send_signal(signal.SIGKILL)  # ...and then it dies
    proc.communicate(timeout=10)
    assert status_of(service, execution.id) == "cancelling"
    managers()
    wait_for(lambda: status_of(service, execution.id) == "cancelled")
    assert runs(log) == {"a": [False], "blk": [False]}


def test_an_expired_lease_of_another_host_is_taken_over(
    service: ExecutionService, store: Store, managers: Callable[..., Manager], tmp_path: Path
) -> None:
    from dalsegno.model.records import Claim, LeaseOwner

    log = tmp_path / "runs.log"
    execution = service.create("crashy:chain", {"log": str(log)})
    elsewhere = LeaseOwner("another-host.example", 4242, "1")
    claimed = store.claim(
        Claim(execution.id, execution.status, execution.lease_token, elsewhere, time.time() + 1.0),
        [],
        [],
    )
    assert claimed is not None
    manager = managers()
    time.sleep(0.5)
    assert status_of(service, execution.id) == "started"  # still that host's, for now
    assert manager.running == []
    wait_for(lambda: status_of(service, execution.id) == "completed", timeout=10)
    assert service.find(execution.id).lease_token == claimed.lease_token + 1


def test_a_store_fault_before_a_run_began_leaves_it_to_a_takeover_that_names_it(
    service: ExecutionService,
    store: Store,
    managers: Callable[..., Manager],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store fails (a passing fault, injected at its edge) as a claimed execution's
    graphs are read: the run is left, nothing failed, and taken over once the store has
    answered for a lease; the takeover's event names the fault."""
    from dalsegno.model.errors import StoreUnavailableError

    log = tmp_path / "runs.log"
    execution = service.create("crashy:chain", {"log": str(log)})
    load_graphs, failures = store.load_graphs, [1]

    def failing(execution_id: str) -> object:
        if failures:
            failures.pop()
            raise StoreUnavailableError("the store's disk is full (injected)")
        return load_graphs(execution_id)

    monkeypatch.setattr(store, "load_graphs", failing)
    managers()
    wait_for(lambda: status_of(service, execution.id) == "completed", timeout=15)
    messages = [event.message for event in service.events(execution.id)]
    resumed = [message for message in messages if "taken over by manager" in message]
    assert len(resumed) == 1, messages
    assert "its previous owner abandoned the run: the store was unavailable" in resumed[0]
    assert "the store's disk is full (injected)" in resumed[0]
    assert runs(log) == {"a": [False], "b": [False], "c": [False]}


def test_a_graceful_stop_hands_over_without_waiting_for_the_lease(
    store_url: str, store: Store, tmp_path: Path
) -> None:
    config = EngineConfig(concurrency=4, lease_timeout=600.0, poll_interval=0.05)
    first = Manager(ExecutionService(store, config), ManagerConfig(grace=5.0))
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    service = first.service
    execution = service.create(
        "crashy:blocking", {"log": str(log), "marker": str(marker), "hold": str(hold)}
    )
    first.start()
    wait_for(marker.exists)
    stopping = time.monotonic()

    def release_soon() -> None:
        time.sleep(0.3)
        hold.unlink()

    import threading

    threading.Thread(target=release_soon).start()
    first.stop(5.0)  # the running operation ends within the grace period
    assert time.monotonic() - stopping < 5
    record = service.find(execution.id)
    assert record.status.value == "started"
    assert record.lease_owner is None  # released: no need to wait 600 s
    second = Manager(ExecutionService(store, config), ManagerConfig())
    second.owner = replace(second.owner, pid=os.getpid() + 100000)
    second.start()
    try:
        wait_for(lambda: status_of(service, execution.id) == "completed", timeout=10)
    finally:
        second.stop(0.5)
    assert runs(log) == {"a": [False], "blk": [False], "c": [False]}


def test_a_manager_that_lost_its_lease_writes_nothing(
    service: ExecutionService, store: Store, managers: Callable[..., Manager], tmp_path: Path
) -> None:
    from dalsegno.model.records import Claim, LeaseOwner

    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    execution = service.create(
        "crashy:blocking", {"log": str(log), "marker": str(marker), "hold": str(hold)}
    )
    managers()
    wait_for(marker.exists)
    running = service.find(execution.id)
    thief = LeaseOwner("another-host.example", 4242, "1")
    stolen = store.claim(
        Claim(execution.id, running.status, running.lease_token, thief, time.time() + 600),
        [],
        [],
    )
    assert stolen is not None
    before = [event.id for event in service.events(execution.id)]
    hold.unlink()
    time.sleep(1.0)
    after = service.find(execution.id)
    assert after.lease_token == stolen.lease_token
    assert after.lease_owner == thief
    assert [event.id for event in service.events(execution.id)] == before
    assert runs(log) == {"a": [False], "blk": [False]}  # c never started
