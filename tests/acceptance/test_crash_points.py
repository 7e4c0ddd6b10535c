"""Crash tests at the engine's own points (`DALSEGNO_CRASH_AT=point[:task_key]`), while a
task waits for its retry, and the resume rules of the workflow itself (docs/design.md section 3).

The helpers and the run log are those of test_crash_resume.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from acceptance.test_crash_resume import (
    Files,
    crash_at,
    dry_run,
    dry_run_text,
    get,
    kill_when,
    kill_when_blocked,
    only_execution,
    resume,
    status_of,
    statuses,
    task_of,
    wait_for,
)
from conftest import run_cli, start_cli
from dalsegno.store import Store

pytestmark = pytest.mark.crash

DONE = {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


@pytest.fixture
def files(tmp_path: Path) -> Files:
    made = Files(tmp_path / "runs.log", tmp_path / "marker", tmp_path / "hold")
    made.hold.touch()
    return made


# --- between two tasks of a chain a -> b -> c ------------------------------------------


@pytest.mark.parametrize(
    ("point", "resumable", "crashed", "plan", "exit_code", "runs"),
    [
        pytest.param(
            "after_operation:a",
            True,
            {"a": "started", "b": "pending", "c": "pending"},
            {"a": "re-run", "b": "run", "c": "run"},
            0,
            {"a": [False, True], "b": [False], "c": [False]},
            id="a-ran-success-not-stored-resumable",
        ),
        pytest.param(
            "before_operation:b",
            True,
            {"a": "succeeded", "b": "started", "c": "pending"},
            {"a": "kept", "b": "re-run", "c": "run"},
            0,
            {"a": [False], "b": [True], "c": [False]},
            id="b-started-not-run-resumable",
        ),
        pytest.param(
            "after_operation:a",
            False,
            {"a": "started", "b": "pending", "c": "pending"},
            {"a": "fail", "b": "run", "c": "run"},
            1,
            {"a": [False]},
            id="a-ran-success-not-stored-not-resumable",
        ),
        pytest.param(
            "before_operation:b",
            False,
            {"a": "succeeded", "b": "started", "c": "pending"},
            {"a": "kept", "b": "fail", "c": "run"},
            1,
            {"a": [False]},
            id="b-started-not-run-not-resumable",
        ),
    ],
)
def test_crash_between_two_tasks(
    home: Path,
    store: Store,
    files: Files,
    point: str,
    resumable: bool,
    crashed: dict[str, str],
    plan: dict[str, str],
    exit_code: int,
    runs: dict[str, list[bool]],
) -> None:
    flag = "true" if resumable else "false"
    crash_at(home, point, "crashy:chain", "-p", f"log={files.log}", "-p", f"resumable={flag}")
    execution_id = only_execution(store)
    before = get(home, execution_id)
    assert before["status"] == "started"
    assert statuses(before) == crashed
    assert files.resumes() == {"a": [False]}
    assert dry_run(home, store, execution_id) == plan

    done = resume(home, execution_id)

    assert done.returncode == exit_code, done.stderr
    assert files.resumes() == runs
    after = get(home, execution_id)
    if exit_code == 0:
        assert (after["status"], statuses(after)) == ("completed", DONE)
        return
    key = point.rpartition(":")[2]
    reason = f"Cannot resume - operation not resumable: {key} (crashy:step)"
    assert after["status"] == "failed"
    assert reason in after["error"]
    assert task_of(after, key)["error"] == reason
    assert statuses(after)["c"] == "pending"


# --- around the graph and the end ------------------------------------------------------


def test_crash_while_storing_the_graph_leaves_no_graph_and_resume_builds_it(
    home: Path, store: Store, files: Files
) -> None:
    crash_at(home, "graph_storing", "crashy:chain", "-p", f"log={files.log}")
    execution_id = only_execution(store)
    before = get(home, execution_id)
    assert (before["status"], before["tasks"]) == ("started", [])
    assert "graph_stored" not in {event.type for event in store.list_events(execution_id)}
    assert store.load_graphs(execution_id) == {}
    plan = dry_run_text(home, store, execution_id)
    assert "no tasks" in plan

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    after = get(home, execution_id)
    assert (after["status"], statuses(after)) == ("completed", DONE)
    assert files.resumes() == {"a": [False], "b": [False], "c": [False]}
    stored = [event for event in store.list_events(execution_id) if event.type == "graph_stored"]
    assert len(stored) == 1


def test_crash_before_finish_resume_completes_without_running_anything(
    home: Path, store: Store, files: Files
) -> None:
    crash_at(home, "before_finish", "crashy:chain", "-p", f"log={files.log}")
    execution_id = only_execution(store)
    before = get(home, execution_id)
    assert (before["status"], statuses(before)) == ("started", DONE)
    assert dry_run(home, store, execution_id) == {"a": "kept", "b": "kept", "c": "kept"}

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    assert get(home, execution_id)["status"] == "completed"
    assert files.resumes() == {"a": [False], "b": [False], "c": [False]}
    again = resume(home, execution_id)
    assert again.returncode == 2, again.stderr
    assert "completed" in again.stderr


# --- a task waiting for its retry --------------------------------------------------------


def test_kill_while_rescheduled_a_resume_by_hand_keeps_the_retry_until_a_cancel_resets_it(
    home: Path, store: Store, files: Files
) -> None:
    def rescheduled() -> bool:
        executions = store.list_executions()
        return bool(executions) and any(
            task.key == "flaky" and task.status.value == "rescheduled"
            for task in store.list_tasks(executions[0].id)
        )

    kill_when(home, rescheduled, "crashy:retrying", "-p", f"log={files.log}")
    execution_id = only_execution(store)
    before = get(home, execution_id)
    assert statuses(before) == {"a": "succeeded", "flaky": "rescheduled", "c": "pending"}
    assert task_of(before, "flaky")["retries"] == 1
    # A crashed execution resumed by hand is a takeover: the retry keeps its count and
    # its due time (300 s away), as a manager's takeover would (docs/design.md).
    assert dry_run(home, store, execution_id) == {"a": "kept", "flaky": "run", "c": "run"}
    waiting = start_cli(home, "executions", "resume", execution_id)
    try:
        wait_for(lambda: store.get_execution(execution_id).runs == 2, "the resume's claim")
        time.sleep(1.0)
        assert status_of(store, execution_id, "flaky") == "rescheduled"
        assert len(files.runs()) == 2  # a and flaky's first run: nothing ran again
        cancel = run_cli(home, "executions", "cancel", execution_id)
        assert cancel.returncode == 0, cancel.stderr
        _, err = waiting.communicate(timeout=20)
        assert waiting.returncode == 3, err  # cancelled
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    # A person's resume of the cancelled execution resets the retry: it runs at once.
    assert dry_run(home, store, execution_id) == {"a": "kept", "flaky": "reset", "c": "run"}
    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    after = get(home, execution_id)
    assert after["status"] == "completed"
    assert (task_of(after, "flaky")["status"], task_of(after, "flaky")["retries"]) == (
        "succeeded",
        0,
    )
    assert [(run["key"], run["retries"]) for run in files.runs()] == [
        ("a", 0),
        ("flaky", 0),
        ("flaky", 0),
        ("c", 0),
    ]


# --- rules of the workflow itself ---------------------------------------------------------


def test_kill_of_a_non_resumable_workflow_resume_fails_at_once(
    home: Path, store: Store, files: Files
) -> None:
    kill_when_blocked(home, files, "crashy:oneshot")
    execution_id = only_execution(store)
    reason = "Cannot resume - workflow not resumable: crashy:oneshot"
    assert reason in dry_run_text(home, store, execution_id)
    files.hold.unlink()

    done = resume(home, execution_id)

    assert done.returncode == 1, done.stderr
    after = get(home, execution_id)
    assert (after["status"], after["error"]) == ("failed", reason)
    assert statuses(after) == {"a": "succeeded", "blk": "started", "c": "pending"}
    assert files.resumes() == {"a": [False], "blk": [False]}


def test_resume_with_code_that_adds_a_task_fails_naming_it_then_resumes_with_fixed_code(
    home: Path, store: Store, files: Files
) -> None:
    kill_when_blocked(home, files, "crashy:drifting")
    execution_id = only_execution(store)
    files.hold.unlink()

    drifted = resume(home, execution_id, CRASHY_EXTRA_TASK="1")

    assert drifted.returncode == 1, drifted.stderr
    failed = get(home, execution_id)
    assert failed["status"] == "failed"
    assert "Cannot resume - task 'x' is not in the stored graph 'main'" in failed["error"]
    assert statuses(failed) == {"a": "succeeded", "blk": "started", "c": "pending"}
    assert files.resumes() == {"a": [False], "blk": [False]}
    assert status_of(store, execution_id, "blk") == "started"

    done = resume(home, execution_id)  # the code builds the stored graph again

    assert done.returncode == 0, done.stderr
    after = get(home, execution_id)
    assert (after["status"], set(statuses(after))) == ("completed", {"a", "blk", "c"})
    assert files.resumes() == {"a": [False], "blk": [False, True], "c": [False]}
