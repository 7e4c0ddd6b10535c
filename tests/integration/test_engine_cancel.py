"""Cancel in process (docs/design.md section 4): `cancel`, `force` and `kill` asked from another
thread while an operation runs, and the resume that runs what the cancel left pending."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dalsegno.model.errors import ConflictError
from dalsegno.model.records import TaskRecord
from dalsegno.service.executions import ExecutionService, RunResult

BEHAVIOUR = Path(__file__).resolve().parents[1] / "workflows" / "behaviour.py"


def ref(name: str) -> str:
    return f"{BEHAVIOUR}:{name}"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


class Background:
    """`service.start` in a thread of its own, as a run that another thread cancels."""

    def __init__(self, service: ExecutionService, workflow: str, params: dict[str, object]):
        self.service = service
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.ids: list[str] = []
        self.thread = threading.Thread(target=self._run, args=(workflow, params), daemon=True)
        self.thread.start()
        wait_for(lambda: bool(self.ids), what="the execution to be created")

    def _run(self, workflow: str, params: dict[str, object]) -> None:
        try:
            self.result = self.service.start(workflow, params, on_created=self.ids.append)
        except BaseException as exc:  # reported by join()
            self.error = exc

    @property
    def execution_id(self) -> str:
        return self.ids[0]

    def join(self, timeout: float) -> RunResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run did not end within {timeout}s"
        assert self.error is None, repr(self.error)
        assert self.result is not None
        return self.result


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    path = tmp_path / "gates"
    path.mkdir()
    return path


@pytest.fixture
def chain(service: ExecutionService, gates: Path) -> Iterator[Background]:
    """`gated_chain` running, with task `a` inside its operation; the gate opens at the end."""
    run = Background(service, ref("gated_chain"), {"dir": str(gates)})
    wait_for((gates / "a.running").exists, what="task a to start")
    yield run
    (gates / "a.go").touch()
    run.thread.join(5)


def statuses(service: ExecutionService, execution_id: str) -> dict[str, str]:
    return {task.key: task.status.value for task in service.get(execution_id)[1]}


def tasks_by_key(service: ExecutionService, execution_id: str) -> dict[str, TaskRecord]:
    return {task.key: task for task in service.get(execution_id)[1]}


def started_keys(service: ExecutionService, execution_id: str) -> list[str]:
    return [
        event.task_key or ""
        for event in service.events(execution_id)
        if event.type == "task_started"
    ]


def runs_of(gates: Path, name: str) -> int:
    path = gates / f"{name}.runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_cancel_waits_for_the_running_task_and_starts_no_new_one(
    service: ExecutionService, chain: Background, gates: Path
) -> None:
    asked = service.cancel(chain.execution_id, "cancel")
    assert asked.status == "cancelling"

    time.sleep(0.3)  # the run has seen the cancel, and keeps waiting for `a`
    assert chain.thread.is_alive()
    assert service.get(chain.execution_id)[0].status == "cancelling"
    (gates / "a.go").touch()
    result = chain.join(5)

    assert result.status == "cancelled"
    execution = service.get(chain.execution_id)[0]
    assert (execution.status, execution.error) == ("cancelled", None)
    assert execution.ended_at is not None
    assert statuses(service, chain.execution_id) == {
        "a": "succeeded",
        "b": "pending",
        "c": "pending",
    }
    assert started_keys(service, chain.execution_id) == ["a"]
    said = [event.message for event in service.events(chain.execution_id)]
    assert "Cancel requested for 'gated_chain' workflow execution" in said
    assert said[-1] == "'gated_chain' workflow execution cancelled"


def test_a_resume_after_cancel_runs_what_was_left_pending(
    service: ExecutionService, chain: Background, gates: Path
) -> None:
    service.cancel(chain.execution_id, "cancel")
    time.sleep(0.2)
    (gates / "a.go").touch()
    assert chain.join(5).status == "cancelled"

    resumed = service.resume(chain.execution_id)

    assert resumed.status == "completed"
    assert statuses(service, chain.execution_id) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
    }
    assert runs_of(gates, "a") == 1  # kept, never run again
    assert started_keys(service, chain.execution_id) == ["a", "b", "c"]


def test_a_cancel_as_the_last_running_task_ends_starts_no_new_task(
    service: ExecutionService, store_url: str
) -> None:
    """The cancel is committed before `first` returns: `second` must never start."""
    run = service.start(ref("self_cancel"), {"store_url": store_url, "linger": 0.0})

    assert run.status == "cancelled"
    assert statuses(service, run.execution_id) == {"first": "succeeded", "second": "pending"}
    assert started_keys(service, run.execution_id) == ["first"]


def test_a_cancel_while_the_task_runs_on_starts_no_new_task(
    service: ExecutionService, store_url: str
) -> None:
    run = service.start(ref("self_cancel"), {"store_url": store_url, "linger": 0.3})

    assert run.status == "cancelled"
    assert statuses(service, run.execution_id) == {"first": "succeeded", "second": "pending"}
    assert started_keys(service, run.execution_id) == ["first"]


def test_force_cancel_ends_at_once_and_leaves_the_running_task_started(
    service: ExecutionService, chain: Background, gates: Path
) -> None:
    asked_at = time.monotonic()
    assert service.cancel(chain.execution_id, "force").status == "force_cancelling"

    result = chain.join(2)
    assert time.monotonic() - asked_at < 1.0
    assert not (gates / "a.go").exists()  # `a` is still inside its operation
    assert result.status == "cancelled"
    assert service.get(chain.execution_id)[0].status == "cancelled"
    assert statuses(service, chain.execution_id) == {"a": "started", "b": "pending", "c": "pending"}

    # The result that arrives later is recorded, and changes no outcome.
    (gates / "a.go").touch()
    a = tasks_by_key(service, chain.execution_id)["a"]

    def late_result_recorded() -> bool:
        attempts = [x for x in service.store.list_attempts(chain.execution_id) if x.task_id == a.id]
        return attempts[-1].outcome == "succeeded"

    wait_for(late_result_recorded, timeout=5, what="the late result of a")
    assert service.get(chain.execution_id)[0].status == "cancelled"
    assert statuses(service, chain.execution_id) == {"a": "started", "b": "pending", "c": "pending"}
    assert any(
        event.type == "task_late_result" and event.task_key == "a"
        for event in service.events(chain.execution_id)
    )


def test_kill_cancel_fails_the_running_task(
    service: ExecutionService, chain: Background, gates: Path
) -> None:
    asked_at = time.monotonic()
    assert service.cancel(chain.execution_id, "kill").status == "kill_cancelling"

    result = chain.join(2)
    assert time.monotonic() - asked_at < 1.0
    assert result.status == "cancelled"
    stored = tasks_by_key(service, chain.execution_id)
    assert {key: task.status for key, task in stored.items()} == {
        "a": "failed",
        "b": "pending",
        "c": "pending",
    }
    assert stored["a"].error == "killed by cancel"
    assert "Task failed 'a' -> killed by cancel" in [
        event.message for event in service.events(chain.execution_id)
    ]
    (attempt,) = [
        x for x in service.store.list_attempts(chain.execution_id) if x.task_id == stored["a"].id
    ]
    assert attempt.ended_at is not None
    assert attempt.outcome != "succeeded"

    (gates / "a.go").touch()
    resumed = service.resume(chain.execution_id)
    assert resumed.status == "completed"
    assert statuses(service, chain.execution_id) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
    }
    assert runs_of(gates, "a") == 2


def test_a_cancel_does_not_wait_for_a_retry_that_is_due_later(service: ExecutionService) -> None:
    run = Background(service, ref("probes"), {"fail_times": 1, "retries": 1, "interval": 30.0})
    wait_for(
        lambda: statuses(service, run.execution_id).get("p0") == "rescheduled",
        what="p0 to be rescheduled",
    )
    service.cancel(run.execution_id, "cancel")

    assert run.join(2).status == "cancelled"
    assert statuses(service, run.execution_id) == {"p0": "rescheduled"}


def test_a_completed_execution_cannot_be_cancelled(service: ExecutionService, gates: Path) -> None:
    (gates / "a.go").touch()
    run = service.start(ref("gated_chain"), {"dir": str(gates)})
    assert run.status == "completed"
    before = service.events(run.execution_id)

    with pytest.raises(ConflictError):
        service.cancel(run.execution_id, "cancel")

    assert service.get(run.execution_id)[0].status == "completed"
    assert service.events(run.execution_id) == before
