"""Crash tests: SIGKILL a real `dalsegno run` while an operation runs, then resume it.

The process is killed from outside: the test waits for the blocking operation's marker
file, then `proc.kill()`. Every operation appends one line per run to a log (see
tests/workflows/crashy.py), which is how a test proves that nothing completed ran twice.
Crashes at the engine's own points (`DALSEGNO_CRASH_AT`) are in test_crash_points.py,
which shares the helpers below.

Each row of docs/design.md section 3 is proven here or there:
- succeeded: kept, never run again (every test);
- pending: runs normally (every test: `c` after the interrupted task);
- rescheduled: test_crash_points.py::test_kill_while_rescheduled_...;
- sent (agent): test_kill_with_an_agent_task_in_flight_...;
- started: resumable re-run / not resumable fail (here and between two tasks);
- failed: manual resume resets it (test_kill_inside_non_resumable_...).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, start_cli
from dalsegno.service.views import execution_json
from dalsegno.store import Store

pytestmark = pytest.mark.crash

QUICK = 5.0  # seconds: a resume right after a kill must not wait for any lease to expire
# The runs that get killed hold a lease that cannot expire during a test, so a resume can
# only take the execution over because its owner is dead (the same-host rule of docs/design.md).
LONG_LEASE = {"DALSEGNO_LEASE_TIMEOUT": "600"}
KILLED = -signal.SIGKILL
PLAN_LINE = re.compile(r"^  (\S+)\s+(kept|run|reset|re-run|failed|fail|awaited)\s+\((\w+)")


@dataclass(frozen=True)
class Files:
    """The run log, the marker a blocking operation touches, the file that holds it."""

    log: Path
    marker: Path
    hold: Path

    def params(self, **more: object) -> list[str]:
        found = {"log": str(self.log), "marker": str(self.marker), "hold": str(self.hold)}
        found.update({key: json.dumps(value) for key, value in more.items()})
        return [arg for key, value in found.items() for arg in ("-p", f"{key}={value}")]

    def runs(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def resumes(self) -> dict[str, list[bool]]:
        """For each task key, the `ctx.resume` of each of its runs, in order."""
        found: dict[str, list[bool]] = {}
        for run in self.runs():
            found.setdefault(run["key"], []).append(run["resume"])
        return found


@pytest.fixture
def files(tmp_path: Path) -> Files:
    made = Files(tmp_path / "runs.log", tmp_path / "marker", tmp_path / "hold")
    made.hold.touch()
    return made


# --- helpers, shared with test_crash_points.py -------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def kill_when(home: Path, condition: Callable[[], bool], ref: str, *args: str) -> None:
    """Start `dalsegno run REF ARGS`, wait for `condition`, then SIGKILL the process."""
    proc = start_cli(home, "run", ref, *args, **LONG_LEASE)
    try:
        wait_for(lambda: condition() or proc.poll() is not None, f"the run of {ref}")
        assert proc.poll() is None, proc.communicate()
    finally:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == KILLED, (out, err)


def kill_when_blocked(home: Path, files: Files, ref: str, **params: object) -> None:
    """SIGKILL `dalsegno run REF` while its blocking operation runs."""
    kill_when(home, files.marker.exists, ref, *files.params(**params))
    files.marker.unlink()


def crash_at(home: Path, point: str, ref: str, *args: str) -> None:
    """`dalsegno run REF` that SIGKILLs itself at `point` (DALSEGNO_CRASH_AT)."""
    done = run_cli(home, "run", ref, *args, timeout=20, DALSEGNO_CRASH_AT=point, **LONG_LEASE)
    assert done.returncode == KILLED, (done.stdout, done.stderr)


def only_execution(store: Store) -> str:
    found = store.list_executions()
    assert len(found) == 1, found
    return found[0].id


def cli_json(home: Path, *args: str) -> Any:
    done = run_cli(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get(home: Path, execution_id: str) -> dict[str, Any]:
    """`executions get ID --json`."""
    return cli_json(home, "executions", "get", execution_id)  # type: ignore[no-any-return]


def status_of(store: Store, execution_id: str, key: str) -> str:
    """A task's state, read from the store while a run is going on."""
    return next(task.status.value for task in store.list_tasks(execution_id) if task.key == key)


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {task["key"]: task["status"] for task in document["tasks"]}


def task_of(document: dict[str, Any], key: str) -> dict[str, Any]:
    return next(task for task in document["tasks"] if task["key"] == key)


def resume(
    home: Path, execution_id: str, *flags: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`executions resume ID` right after a kill: the dead owner's lease is void at once,
    though it has not expired."""
    began = time.monotonic()
    done = run_cli(home, "executions", "resume", execution_id, *flags, timeout=30, **env)
    elapsed = time.monotonic() - began
    assert elapsed < QUICK, f"resume took {elapsed:.1f}s: did it wait for the lease to expire?"
    return done


def snapshot(store: Store, execution_id: str) -> tuple[str, int]:
    """What `executions get --json` prints (the same function builds it) and the event count."""
    execution = store.get_execution(execution_id)
    assert execution is not None
    document = execution_json(execution, store.list_tasks(execution_id))
    return json.dumps(document, sort_keys=True), len(store.list_events(execution_id))


def dry_run_text(home: Path, store: Store, execution_id: str, *flags: str) -> str:
    """`executions resume --dry-run` exits 0, prints the plan and changes nothing."""
    before = snapshot(store, execution_id)
    done = run_cli(home, "executions", "resume", execution_id, "--dry-run", *flags)
    assert done.returncode == 0, done.stderr
    assert snapshot(store, execution_id) == before, "the dry run changed something"
    assert "Nothing was changed (dry run)" in done.stdout
    return done.stdout


def dry_run(home: Path, store: Store, execution_id: str, *flags: str) -> dict[str, str]:
    """The dry run's action for each task key."""
    text = dry_run_text(home, store, execution_id, *flags)
    return {m[1]: m[2] for m in map(PLAN_LINE.match, text.splitlines()) if m}


def events_of(home: Path, execution_id: str) -> list[dict[str, Any]]:
    done = run_cli(home, "events", execution_id, "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# --- an operation killed while it runs -------------------------------------------------


def test_kill_inside_resumable_operation_resume_reruns_it(
    home: Path, store: Store, files: Files
) -> None:
    kill_when_blocked(home, files, "crashy:blocking")
    listed = cli_json(home, "executions", "list")
    assert [execution["status"] for execution in listed] == ["started"]
    execution_id = listed[0]["id"]
    assert statuses(get(home, execution_id)) == {"a": "succeeded", "blk": "started", "c": "pending"}
    assert dry_run(home, store, execution_id) == {"a": "kept", "blk": "re-run", "c": "run"}
    files.hold.unlink()

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    after = get(home, execution_id)
    assert (after["status"], after["error"]) == ("completed", None)
    assert set(statuses(after).values()) == {"succeeded"}
    assert files.resumes() == {"a": [False], "blk": [False, True], "c": [False]}
    blk = int(task_of(after, "blk")["id"])
    outcomes = [a.outcome for a in store.list_attempts(execution_id) if a.task_id == blk]
    assert outcomes == ["interrupted", "succeeded"]


def test_kill_inside_non_resumable_operation_fails_resume_until_a_person_resets_it(
    home: Path, store: Store, files: Files
) -> None:
    kill_when_blocked(home, files, "crashy:blocking", resumable=False)
    execution_id = only_execution(store)
    assert dry_run(home, store, execution_id) == {"a": "kept", "blk": "fail", "c": "run"}
    files.hold.unlink()

    refused = resume(home, execution_id)

    assert refused.returncode == 1, refused.stderr
    reason = "Cannot resume - operation not resumable: blk (crashy:block_once)"
    failed = get(home, execution_id)
    assert failed["status"] == "failed"
    assert reason in failed["error"]
    assert task_of(failed, "blk")["error"] == reason
    assert statuses(failed) == {"a": "succeeded", "blk": "failed", "c": "pending"}
    assert files.resumes() == {"a": [False], "blk": [False]}

    # A person decided: a manual resume of the failed execution resets blk and runs it.
    assert dry_run(home, store, execution_id) == {"a": "kept", "blk": "reset", "c": "run"}
    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    after = get(home, execution_id)
    assert after["status"] == "completed"
    assert (task_of(after, "blk")["status"], task_of(after, "blk")["retries"]) == ("succeeded", 0)
    assert files.resumes() == {"a": [False], "blk": [False, False], "c": [False]}
    records = store.list_events(execution_id)
    assert [(e.type, e.task_key) for e in records if e.type == "task_reset"] == [
        ("task_reset", "blk")
    ]
    resumed = [e.message for e in records if e.type == "workflow_resumed"]
    assert len(resumed) == 2
    assert "reset: blk" in resumed[1], "every resume is recorded with what it reset"


def test_reset_operations_reruns_an_interrupted_non_resumable_operation(
    home: Path, store: Store, files: Files
) -> None:
    kill_when_blocked(home, files, "crashy:blocking", resumable=False)
    execution_id = only_execution(store)
    plan = dry_run(home, store, execution_id, "--reset-operations")
    assert plan == {"a": "kept", "blk": "reset", "c": "run"}
    files.hold.unlink()

    done = resume(home, execution_id, "--reset-operations")

    assert done.returncode == 0, done.stderr
    after = get(home, execution_id)
    assert after["status"] == "completed"
    assert set(statuses(after).values()) == {"succeeded"}
    assert files.resumes() == {"a": [False], "blk": [False, False], "c": [False]}


def test_kill_with_an_agent_task_in_flight_awaits_it_and_never_sends_it_twice(
    home: Path, store: Store, files: Files
) -> None:
    kill_when_blocked(home, files, "crashy:remote")
    execution_id = only_execution(store)
    crashed = get(home, execution_id)
    assert statuses(crashed) == {"local": "started", "remote": "sent"}
    assert task_of(crashed, "remote")["agent"] == "web"
    assert dry_run(home, store, execution_id) == {"local": "re-run", "remote": "awaited"}
    files.hold.unlink()

    resumed = start_cli(home, "executions", "resume", execution_id)
    cancelled = False
    try:
        wait_for(
            lambda: status_of(store, execution_id, "local") == "succeeded",
            "the resumed run to re-run `local`",
            timeout=QUICK,
        )
        assert resumed.poll() is None, "the resumed run must wait for the agent's result"
        cancel = run_cli(home, "executions", "cancel", execution_id)
        assert cancel.returncode == 0, cancel.stderr
        cancelled = True
    finally:
        if not cancelled:
            resumed.kill()
        out, err = resumed.communicate(timeout=20)
    assert resumed.returncode == 3, (out, err)

    after = get(home, execution_id)
    assert after["status"] == "cancelled"
    assert statuses(after) == {"local": "succeeded", "remote": "sent"}
    sent = [
        e
        for e in events_of(home, execution_id)
        if e["type"] == "task_sent" and e["task_key"] == "remote"
    ]
    assert len(sent) == 1, sent
    assert files.resumes() == {"local": [False, True]}


def test_resume_of_a_running_execution_is_refused_and_changes_nothing(
    home: Path, store: Store, files: Files
) -> None:
    proc = start_cli(home, "run", "crashy:blocking", *files.params())
    try:
        wait_for(lambda: files.marker.exists() or proc.poll() is not None, "the marker")
        assert proc.poll() is None
        execution_id = only_execution(store)
        before = snapshot(store, execution_id)

        refusals = {}
        for flags in ((), ("--dry-run",), ("--reset-operations",)):
            refused = run_cli(home, "executions", "resume", execution_id, *flags)
            assert refused.returncode == 2, (flags, refused.stdout, refused.stderr)
            assert "still running" in refused.stderr
            assert snapshot(store, execution_id) == before
            refusals[flags] = refused.stderr
    finally:
        files.hold.unlink()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, (out, err)
    assert files.resumes() == {"a": [False], "blk": [False], "c": [False]}
    for flags, stderr in refusals.items():
        assert len(stderr.strip().splitlines()) == 1, f"{flags}: not one line: {stderr!r}"
