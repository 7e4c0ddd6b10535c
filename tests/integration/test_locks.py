"""Lock keys: an execution that names a key held by another active one waits in `queued`."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import WORKFLOWS
from dalsegno.manager.manager import Manager, ManagerConfig
from dalsegno.model.errors import RefusedError
from dalsegno.service.executions import ExecutionService

sys.path.insert(0, str(WORKFLOWS))


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def status(service: ExecutionService, execution_id: str) -> str:
    return service.find(execution_id).status.value


@pytest.fixture
def manager(service: ExecutionService) -> Iterator[Manager]:
    running = Manager(service, ManagerConfig())
    running.start()
    yield running
    running.stop(0.5)


def blocking(tmp_path: Path, name: str) -> tuple[dict[str, str], Path, Path]:
    marker, hold = tmp_path / f"{name}.began", tmp_path / f"{name}.hold"
    hold.touch()
    params = {"log": str(tmp_path / "runs.log"), "marker": str(marker), "hold": str(hold)}
    return params, marker, hold


def test_the_second_execution_of_a_lock_waits_queued_until_the_first_ends(
    service: ExecutionService, manager: Manager, tmp_path: Path
) -> None:
    first_params, first_began, first_hold = blocking(tmp_path, "first")
    second_params, second_began, second_hold = blocking(tmp_path, "second")
    second_hold.unlink()
    first = service.create("crashy:blocking", first_params, lock="db-migration")
    second = service.create("crashy:blocking", second_params, lock="db-migration")
    other = service.create("crashy:blocking", second_params | {"marker": str(tmp_path / "o")},
                           lock="another-key")  # fmt: skip
    assert status(service, second.id) == "queued"
    # Another key never queues; the manager, woken by the create, may have claimed it already.
    assert status(service, other.id) in ("pending", "started", "completed")
    wait_for(first_began.exists)
    wait_for(lambda: status(service, other.id) == "completed")
    time.sleep(0.3)
    assert status(service, second.id) == "queued"
    assert not second_began.exists()
    first_hold.unlink()
    wait_for(lambda: status(service, second.id) == "completed")
    assert status(service, first.id) == "completed"
    messages = [event.message for event in service.events(second.id)]
    assert "Lock 'db-migration' is free: pending" in messages
    assert service.find(second.id).lock_key == "db-migration"


def test_a_run_here_waits_for_the_lock_then_runs(
    service: ExecutionService, manager: Manager, tmp_path: Path
) -> None:
    first_params, first_began, first_hold = blocking(tmp_path, "first")
    second_params, second_began, second_hold = blocking(tmp_path, "second")
    second_hold.unlink()
    service.create("crashy:blocking", first_params, lock="k")
    wait_for(first_began.exists)
    results = []
    local = threading.Thread(
        target=lambda: results.append(service.start("crashy:blocking", second_params, lock="k"))
    )
    local.start()
    time.sleep(0.5)
    assert not second_began.exists()
    first_hold.unlink()
    local.join(15)
    assert results[0].status.value == "completed"


def test_cancelling_a_queued_execution_ends_it_and_frees_nobody_else(
    service: ExecutionService, manager: Manager, tmp_path: Path
) -> None:
    first_params, first_began, first_hold = blocking(tmp_path, "first")
    first = service.create("crashy:blocking", first_params, lock="k")
    queued = service.create("crashy:blocking", first_params, lock="k")
    wait_for(first_began.exists)
    assert service.cancel(queued.id).status.value == "cancelled"
    first_hold.unlink()
    wait_for(lambda: status(service, first.id) == "completed")
    assert status(service, queued.id) == "cancelled"


@pytest.mark.parametrize("lock", ["", "   ", "x" * 256])
def test_a_malformed_lock_key_is_refused(service: ExecutionService, lock: str) -> None:
    with pytest.raises(RefusedError, match="lock key"):
        service.create("crashy:chain", {"log": "/dev/null"}, lock=lock)
    assert service.list_executions() == []
