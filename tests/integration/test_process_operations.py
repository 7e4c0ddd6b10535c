"""`@operation(process=True)`: the operation runs in a child process a kill really stops."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import WORKFLOWS
from dalsegno.service.executions import ExecutionService

sys.path.insert(0, str(WORKFLOWS))


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0] != "Z"


def test_a_process_operation_returns_its_result_and_logs(service: ExecutionService) -> None:
    result = service.start("procs:single", {"op": "whoami", "note": "hi"})
    assert result.status.value == "completed"
    (task,) = service.get(result.execution_id)[1]
    assert task.result["note"] == "hi"
    assert task.result["pid"] != os.getpid()
    logs = [e for e in service.events(result.execution_id) if e.type == "log"]
    assert [e.message for e in logs] == [f"running in pid {task.result['pid']}"]
    assert logs[0].task_key == "t"


def test_errors_in_the_child_keep_their_kind(service: ExecutionService) -> None:
    refused = service.start("procs:single", {"op": "refuses"})
    assert refused.status.value == "failed"
    assert "NonRecoverableError: no, never" in (refused.outcome.error or "")
    bad = service.start("procs:single", {"op": "not_json"})
    assert "result is not JSON" in (bad.outcome.error or "")


def test_kill_cancel_stops_the_child_process(service: ExecutionService, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    results = []
    runner = threading.Thread(
        target=lambda: results.append(
            service.start("procs:single", {"op": "sleepy", "pidfile": str(pidfile), "seconds": 60})
        )
    )
    runner.start()
    wait_for(pidfile.exists)
    wait_for(lambda: pidfile.read_text().strip() != "")
    pid = int(pidfile.read_text())
    assert alive(pid)
    (execution,) = service.list_executions()
    asked = time.monotonic()
    service.cancel(execution.id, "kill")
    runner.join(15)
    assert results[0].status.value == "cancelled"
    wait_for(lambda: not alive(pid), timeout=10)
    assert time.monotonic() - asked < 10
    (task,) = service.get(execution.id)[1]
    assert task.status.value == "failed"
    assert task.error == "killed by cancel"


def test_a_timeout_kills_the_child_and_the_retry_runs(
    service: ExecutionService, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    result = service.start("procs:timed", {"pidfile": str(pidfile), "seconds": 60, "timeout": 1.0})
    assert result.status.value == "failed"
    assert "timed out after 1s" in (result.outcome.error or "")
    (task,) = service.get(result.execution_id)[1]
    assert task.retries == 1
    wait_for(lambda: not alive(int(pidfile.read_text())), timeout=10)
