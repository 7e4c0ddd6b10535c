"""Misbehaving operations and workflow functions under a real manager (docs/design.md,
"Misbehaving operations end as failed attempts"): `sys.exit()`, `KeyboardInterrupt`, a
result that cannot be encoded or is too large, in a thread or a child process, and a
workflow function that exits. Each attempt ends `failed` with the reason, the execution
moves on by the failure rules, and the manager's two operation threads serve the next
execution.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faults.conftest import StartManager
from faults.harness import Tally, doubled, run_counts

pytestmark = pytest.mark.crash

CASES = {  # how: the error the attempt ends with
    "exit": "SystemExit: 3",
    "interrupt": "KeyboardInterrupt",
    "deep": "result is not JSON: maximum recursion depth exceeded",
    "huge": "the result is 2,097,154 bytes of JSON, over the limit of 1,048,576 bytes",
    "nan": "result is not JSON: Out of range float values are not JSON compliant",
}


def test_each_misbehaving_attempt_fails_with_its_reason_and_the_pool_serves_on(
    managers: StartManager, tmp_path: Path, backend: str
) -> None:
    tally = Tally("misbehaving operations and workflows", backend)
    log = tmp_path / "runs.log"
    manager = managers(DALSEGNO_CONCURRENCY="2")
    started: dict[str, tuple[str, bool]] = {}
    for how in CASES:
        for child in (False, True):
            execution_id = manager.start_execution(
                "faults.py:misbehaving", log=str(log), how=how, child=child
            )
            started[execution_id] = (how, child)
    exiting = manager.start_execution("faults.py:exits", log=str(log))
    interrupted = manager.start_execution("faults.py:exits", log=str(log), how="interrupt")
    tally.injected = len(started) + 2
    # An unrelated execution after them all: it needs a free operation thread.
    healthy = manager.start_execution("faults.py:chain", log=str(log), steps=3)

    ended = manager.wait_ended([*started, exiting, interrupted, healthy], timeout=90)

    assert ended[healthy]["status"] == "completed"
    for execution_id, (how, child) in started.items():
        execution = ended[execution_id]
        tasks = {task["key"]: task for task in execution["tasks"]}
        where = f"{how} in {'a child process' if child else 'a thread'}"
        assert execution["status"] == "failed", where
        assert CASES[how] in (tasks["bad"]["error"] or ""), (where, tasks["bad"]["error"])
        assert "'bad'" in execution["error"], where
        assert (tasks["bad"]["status"], tasks["side"]["status"], tasks["after"]["status"]) == (
            "failed",
            "succeeded",
            "pending",
        ), where
        tally.survived += 1
    for execution_id, error in ((exiting, "SystemExit: 3"), (interrupted, "KeyboardInterrupt")):
        execution = ended[execution_id]
        assert (execution["status"], execution["error"]) == ("failed", error)
        assert execution["tasks"][0]["status"] == "succeeded"
        tally.survived += 1
    counts = run_counts(log)
    assert doubled(log) == []
    assert all(counts[(execution_id, "bad")] == 1 for execution_id in started)
    assert manager.alive
    assert "Traceback" not in manager.log()
    tally.record()
