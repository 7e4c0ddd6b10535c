"""Retries (docs/design.md section 4): counts, intervals, `retry_after`, non-recoverable errors,
timeouts, the events they write and the attempts history (in process, real SQLite file)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from dalsegno.model.records import AttemptRecord, TaskRecord
from dalsegno.service.executions import ExecutionService

BEHAVIOUR = Path(__file__).resolve().parents[1] / "workflows" / "behaviour.py"


def ref(name: str) -> str:
    return f"{BEHAVIOUR}:{name}"


def only_task(service: ExecutionService, execution_id: str) -> TaskRecord:
    tasks = service.get(execution_id)[1]
    assert len(tasks) == 1
    return tasks[0]


def attempts_of(service: ExecutionService, task: TaskRecord) -> list[AttemptRecord]:
    return [a for a in service.store.list_attempts(task.execution_id) if a.task_id == task.id]


def gaps(attempts: list[AttemptRecord]) -> list[float]:
    """Seconds between the end of each attempt and the start of the next one."""
    return [
        later.started_at - (earlier.ended_at or 0.0)
        for earlier, later in itertools.pairwise(attempts)
    ]


def task_messages(service: ExecutionService, execution_id: str, key: str) -> list[str]:
    return [
        e.message for e in service.events(execution_id) if e.task_key == key and e.type != "log"
    ]


def run_probes(service: ExecutionService, **params: Any) -> tuple[str, TaskRecord]:
    run = service.start(ref("probes"), params)
    return run.execution_id, only_task(service, run.execution_id)


def test_retries_until_success_with_one_attempt_row_each(service: ExecutionService) -> None:
    execution_id, task = run_probes(service, fail_times=2, retries=3, interval=0.2)

    assert service.get(execution_id)[0].status == "completed"
    assert (task.status, task.retries, task.error) == ("succeeded", 2, None)
    attempts = attempts_of(service, task)
    assert [a.number for a in attempts] == [0, 1, 2]
    assert [a.outcome for a in attempts] == ["failed", "failed", "succeeded"]
    assert "boom 0" in (attempts[0].error or "")
    assert "boom 1" in (attempts[1].error or "")
    assert attempts[2].error is None
    assert all(a.ended_at is not None and a.ended_at >= a.started_at for a in attempts)
    assert all(gap >= 0.2 for gap in gaps(attempts)), gaps(attempts)


def test_each_failed_attempt_writes_a_retry_event(service: ExecutionService) -> None:
    execution_id, _ = run_probes(service, fail_times=2, retries=3, interval=0.0)

    said = task_messages(service, execution_id, "p0")
    failed = [m for m in said if m.startswith("Task failed")]
    assert failed == [
        "Task failed 'p0' -> RuntimeError: boom 0 [retry 1/3]",
        "Task failed 'p0' -> RuntimeError: boom 1 [retry 2/3]",
    ]
    assert said.count("Sending task 'p0'") == 3
    assert said[-1] == "Task succeeded 'p0'"


def test_retries_run_out(service: ExecutionService) -> None:
    execution_id, task = run_probes(service, fail_times=9, retries=2, interval=0.0)

    execution = service.get(execution_id)[0]
    assert execution.status == "failed"
    assert (task.status, task.retries) == ("failed", 2)
    assert task.error == "RuntimeError: boom 2"
    assert [a.outcome for a in attempts_of(service, task)] == ["failed"] * 3
    assert f"'p0' ({ref('probe')}): RuntimeError: boom 2" in (execution.error or "")
    failed = [m for m in task_messages(service, execution_id, "p0") if m.startswith("Task failed")]
    assert failed == [
        "Task failed 'p0' -> RuntimeError: boom 0 [retry 1/2]",
        "Task failed 'p0' -> RuntimeError: boom 1 [retry 2/2]",
        "Task failed 'p0' -> RuntimeError: boom 2",
    ]


def test_no_retry_by_default(service: ExecutionService) -> None:
    execution_id, task = run_probes(service, fail_times=1)

    assert service.get(execution_id)[0].status == "failed"
    assert (task.status, task.retries, task.max_retries) == ("failed", 0, 0)
    assert len(attempts_of(service, task)) == 1


def test_default_retry_interval_is_one_second(service: ExecutionService) -> None:
    execution_id, task = run_probes(service, fail_times=1, retries=1)

    assert service.get(execution_id)[0].status == "completed"
    assert task.retry_interval == 1.0
    assert gaps(attempts_of(service, task))[0] >= 1.0


def test_the_operation_declares_a_retry_policy(service: ExecutionService) -> None:
    run = service.start(ref("op_defaults"), {"fail_times": 2})

    task = only_task(service, run.execution_id)
    assert service.get(run.execution_id)[0].status == "completed"
    assert (task.status, task.retries, task.max_retries, task.retry_interval) == (
        "succeeded",
        2,
        2,
        0.05,
    )
    assert all(gap >= 0.05 for gap in gaps(attempts_of(service, task)))


def test_the_task_overrides_the_operation_policy(service: ExecutionService) -> None:
    run = service.start(ref("op_defaults"), {"fail_times": 1, "retries": 0})

    task = only_task(service, run.execution_id)
    assert service.get(run.execution_id)[0].status == "failed"
    assert (task.status, task.retries, task.max_retries) == ("failed", 0, 0)


@pytest.mark.parametrize("fail_with", ["recoverable", "retry"])
@pytest.mark.parametrize(("interval", "retry_after"), [(30.0, 0.1), (0.0, 0.4)])
def test_retry_after_overrides_the_interval(
    service: ExecutionService, fail_with: str, interval: float, retry_after: float
) -> None:
    began = time.monotonic()
    execution_id, task = run_probes(
        service,
        fail_times=1,
        retries=2,
        interval=interval,
        fail_with=fail_with,
        retry_after=retry_after,
    )

    assert time.monotonic() - began < 5
    assert service.get(execution_id)[0].status == "completed"
    assert (task.status, task.retries) == ("succeeded", 1)
    (gap,) = gaps(attempts_of(service, task))
    assert retry_after <= gap < retry_after + 2
    kind = "RecoverableError" if fail_with == "recoverable" else "OperationRetry"
    assert f"Task failed 'p0' -> {kind}: boom 0 [retry 1/2]" in task_messages(
        service, execution_id, "p0"
    )


def test_a_non_recoverable_error_is_never_retried(service: ExecutionService) -> None:
    execution_id, task = run_probes(
        service, fail_times=9, retries=3, interval=0.0, fail_with="nonrecoverable"
    )

    assert service.get(execution_id)[0].status == "failed"
    assert (task.status, task.retries) == ("failed", 0)
    assert task.error == "NonRecoverableError: boom 0"
    assert [a.outcome for a in attempts_of(service, task)] == ["failed"]
    assert "Task failed 'p0' -> NonRecoverableError: boom 0" in task_messages(
        service, execution_id, "p0"
    )


def test_a_timeout_is_a_recoverable_failure_and_is_retried(service: ExecutionService) -> None:
    began = time.monotonic()
    run = service.start(ref("timeouts"), {"first_sleep": 2.0, "timeout": 0.2, "retries": 1})
    took = time.monotonic() - began

    task = only_task(service, run.execution_id)
    assert service.get(run.execution_id)[0].status == "completed"
    assert took < 1.5  # the first attempt was not waited for
    assert (task.status, task.retries, task.result) == ("succeeded", 1, {"retries": 1})
    attempts = attempts_of(service, task)
    assert len(attempts) == 2
    assert "timed out after" in (attempts[0].error or "")
    assert attempts[0].outcome != "succeeded"
    assert attempts[1].outcome == "succeeded"
    assert "Task failed 'sleepy' -> timed out after 0.2s [retry 1/1]" in task_messages(
        service, run.execution_id, "sleepy"
    )


def test_a_timeout_without_retries_fails_the_task(service: ExecutionService) -> None:
    began = time.monotonic()
    run = service.start(ref("timeouts"), {"first_sleep": 2.0, "timeout": 0.2})

    assert time.monotonic() - began < 1.5
    execution = service.get(run.execution_id)[0]
    task = only_task(service, run.execution_id)
    assert execution.status == "failed"
    assert task.status == "failed"
    assert "timed out after 0.2s" in (task.error or "")
    assert "timed out after" in (execution.error or "")
