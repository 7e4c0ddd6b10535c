"""The lifecycle's paths agree (docs/design.md, "The lifecycle"): real processes, killed
with SIGKILL, paused with SIGSTOP, stopped with SIGTERM, on both backends.

1. A crashed execution resumed by hand is the takeover a manager would do: a task waiting
   for its retry keeps its retry count, and a failed task an undo graph reacted to is not
   run again; a manager's takeover of the same state ends the same way.
2. A resume honours the lock key: it waits in `queued` while another execution holds it,
   here and through a manager.
3. A rolling restart fails no work: a manager stopped with SIGTERM keeps an execution whose
   non-resumable operation outlasts `--grace` until it ends; a second signal stops at once.
4. A paused `dalsegno run` whose execution was taken over exits 4 naming the new owner;
   `events --follow` exits with the execution's outcome.
5. The dry run of a workflow that is not resumable says only that it fails at once, and
   the execution's history keeps the error it had before.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from acceptance.test_crash_resume import (
    LONG_LEASE,
    Files,
    dry_run,
    dry_run_text,
    events_of,
    get,
    kill_when,
    only_execution,
    resume,
    wait_for,
)
from acceptance.test_manager_process import Managers, managers, start
from acceptance.test_manager_process import get as rest_get
from conftest import run_cli, start_cli
from dalsegno.store import Store

pytestmark = pytest.mark.crash
_ = managers  # the fixture, used by name

RETRY_WAIT = "lifecycle_flows:retry_wait"


def runs(log: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            found.setdefault(entry["key"], []).append(entry)
    return found


def params(**values: object) -> list[str]:
    return [arg for key, value in values.items() for arg in ("-p", f"{key}={value}")]


def task_status(store: Store, execution_id: str, key: str) -> str | None:
    for task in store.list_tasks(execution_id):
        if task.key == key:
            return task.status.value
    return None


@pytest.fixture
def files(tmp_path: Path) -> Files:
    made = Files(tmp_path / "runs.log", tmp_path / "marker", tmp_path / "hold")
    made.hold.touch()
    return made


# 1. a crashed execution resumed by hand is a takeover ---------------------------------


def test_a_task_killed_in_its_retry_wait_keeps_its_retry_count_on_a_resume_by_hand(
    home: Path, store: Store, files: Files
) -> None:
    def waiting_for_retry() -> bool:
        found = store.list_executions()
        return bool(found) and task_status(store, found[0].id, "later") == "rescheduled"

    kill_when(home, waiting_for_retry, RETRY_WAIT, *params(log=files.log))
    execution_id = only_execution(store)
    plan = dry_run_text(home, store, execution_id)
    assert "it crashed: it is taken over as a manager would" in plan
    assert dry_run(home, store, execution_id) == {"a": "kept", "later": "run", "c": "run"}

    done = resume(home, execution_id)
    assert done.returncode == 0, done.stderr
    later = [(run["retries"], run["resume"]) for run in runs(files.log)["later"]]
    assert later == [(0, False), (1, False)]  # started twice in all, not three times
    document = get(home, execution_id)
    assert document["status"] == "completed"
    assert document["runs"] == 2


def test_an_undo_graph_killed_and_resumed_by_hand_ends_as_a_takeover_does(
    home: Path, store: Store, files: Files, managers: Managers
) -> None:
    by_hand, by_manager = (files, Files(files.log.with_name("runs2.log"), *_more(files)))
    ids = []
    for made in (by_hand, by_manager):
        made.hold.touch()
        kill_when(
            home,
            made.marker.exists,
            "lifecycle_flows:undo_on_failure",
            *params(log=made.log, marker=made.marker, hold=made.hold),
        )
        made.marker.unlink()
        ids.append(next(e.id for e in store.list_executions() if e.id not in ids))
    hand_id, manager_id = ids
    assert dry_run(home, store, hand_id) == {"bad": "failed", "undo/clean": "re-run"}

    by_hand.hold.unlink()
    done = resume(home, hand_id)
    assert done.returncode == 1, done.stderr  # the workflow re-raises after its undo

    by_manager.hold.unlink()
    _, url = managers.start(**LONG_LEASE)  # the dead owner's lease is void at once
    wait_for(lambda: rest_get(managers, url, manager_id)["status"] == "failed", "takeover")

    for made, execution_id in ((by_hand, hand_id), (by_manager, manager_id)):
        ran = {key: [run["resume"] for run in found] for key, found in runs(made.log).items()}
        assert ran == {"bad": [False], "clean": [False, True]}, execution_id
        document = get(home, execution_id)
        assert {t["key"]: t["status"] for t in document["tasks"]} == {
            "bad": "failed",
            "clean": "succeeded",
        }
        assert "broken for good" in document["error"]


def _more(files: Files) -> tuple[Path, Path]:
    return files.marker.with_name("marker2"), files.hold.with_name("hold2")


# 2. lock keys hold on every path ---------------------------------------------------------


def _failed_with_lock(home: Path, tmp_path: Path, lock: str) -> tuple[str, Path, Path]:
    """An execution of `fixable` holding `lock`, failed (its flag file is there)."""
    log, flag = tmp_path / "fixable.log", tmp_path / "flag"
    flag.touch()
    done = run_cli(
        home, "run", "lifecycle_flows:fixable", "--lock", lock, *params(log=log, flag=flag)
    )
    assert done.returncode == 1, done.stderr
    listed = json.loads(run_cli(home, "executions", "list", "--json").stdout)
    return str(listed[0]["id"]), log, flag


def test_a_resume_here_waits_in_queued_while_another_execution_holds_its_lock(
    home: Path, store: Store, files: Files, tmp_path: Path
) -> None:
    failed, log, flag = _failed_with_lock(home, tmp_path, "site-1")
    holder = start_cli(home, "run", "crashy:blocking", "--lock", "site-1", *files.params())
    try:
        wait_for(files.marker.exists, "the holder's blocking task")
        holder_id = next(e.id for e in store.list_executions() if e.id != failed)
        plan = dry_run_text(home, store, failed)
        assert f"lock 'site-1' is held by execution {holder_id}" in plan
        flag.unlink()
        resuming = start_cli(home, "executions", "resume", failed)
        wait_for(lambda: store.get_execution(failed).status.value == "queued", "queued")
        time.sleep(0.5)
        assert store.get_execution(failed).status.value == "queued"  # not beside the holder
        assert [run["key"] for run in _lines(log)] == ["a", "fix"]  # nothing ran yet
        files.hold.unlink()
        out, err = resuming.communicate(timeout=30)
        assert resuming.returncode == 0, err
        assert f"held by execution {holder_id}" in out + err
    finally:
        holder.kill()
        holder.communicate()
    assert [run["key"] for run in _lines(log)] == ["a", "fix", "fix"]
    events = [event["message"] for event in events_of(home, failed)]
    assert any(f"held by execution {holder_id}" in message for message in events)


def test_a_resume_through_a_manager_waits_in_queued_while_the_lock_is_held(
    home: Path, store: Store, files: Files, tmp_path: Path, managers: Managers
) -> None:
    failed, log, flag = _failed_with_lock(home, tmp_path, "site-2")
    _, url = managers.start()
    holder = httpx.post(
        f"{url}/executions",
        headers=managers.headers,
        json={"workflow": "crashy:blocking", "params": _params(files), "lock": "site-2"},
    )
    assert holder.status_code == 201, holder.text
    wait_for(files.marker.exists, "the holder's blocking task")
    flag.unlink()
    answer = httpx.post(f"{url}/executions/{failed}/resume", headers=managers.headers, json={})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    time.sleep(1.0)
    assert rest_get(managers, url, failed)["status"] == "queued"
    files.hold.unlink()
    wait_for(lambda: rest_get(managers, url, failed)["status"] == "completed", "the resume")
    assert [run["key"] for run in _lines(log)] == ["a", "fix", "fix"]


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _params(files: Files) -> dict[str, str]:
    return {"log": str(files.log), "marker": str(files.marker), "hold": str(files.hold)}


# 3. graceful stop never fails work -------------------------------------------------------


def test_sigterm_keeps_a_non_resumable_operation_past_the_grace_and_fails_nothing(
    home: Path, files: Files, managers: Managers
) -> None:
    first, url = managers.start("--grace", "1", **LONG_LEASE)
    execution_id = start(managers, url, "crashy:blocking", **_params(files), resumable=False)
    wait_for(files.marker.exists, "the non-resumable operation")
    first.send_signal(signal.SIGTERM)
    time.sleep(3.0)  # well past --grace
    assert first.poll() is None, "it handed a non-resumable operation over"
    files.hold.unlink()
    assert first.wait(20) == 0
    _, url = managers.start(**LONG_LEASE)
    wait_for(lambda: rest_get(managers, url, execution_id)["status"] == "completed", "the end")
    assert {key: [run["resume"] for run in found] for key, found in runs(files.log).items()} == {
        "a": [False],
        "blk": [False],
        "c": [False],
    }


def test_a_second_sigterm_stops_the_manager_at_once(
    home: Path, files: Files, managers: Managers
) -> None:
    first, url = managers.start("--grace", "1", **LONG_LEASE)
    start(managers, url, "crashy:blocking", **_params(files), resumable=False)
    wait_for(files.marker.exists, "the non-resumable operation")
    first.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert first.poll() is None
    began = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(10) == 1
    assert time.monotonic() - began < 5


# 4. a run taken over exits 4; events --follow exits with the outcome ---------------------


def test_a_paused_run_whose_execution_was_taken_over_exits_4_naming_the_new_owner(
    home: Path, store: Store, files: Files, managers: Managers
) -> None:
    short = {"DALSEGNO_LEASE_TIMEOUT": "2"}
    run = start_cli(home, "run", "crashy:blocking", *files.params(), **short)
    try:
        wait_for(files.marker.exists, "the blocking task")
        files.marker.unlink()
        run.send_signal(signal.SIGSTOP)
        manager, url = managers.start(**short)
        wait_for(files.marker.exists, "the takeover's run of the blocking task", timeout=30)
        run.send_signal(signal.SIGCONT)
        _, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 4, err
    assert f"taken over by {_host()} pid {manager.pid}" in err
    files.hold.unlink()
    execution_id = only_execution(store)
    wait_for(lambda: rest_get(managers, url, execution_id)["status"] == "completed", "the end")


def _host() -> str:
    return socket.gethostname()


def test_events_follow_exits_with_the_outcome(home: Path, tmp_path: Path) -> None:
    log, flag = tmp_path / "runs.log", tmp_path / "flag"
    flag.touch()
    failed = run_cli(home, "run", "lifecycle_flows:fixable", *params(log=log, flag=flag))
    assert failed.returncode == 1
    listed = json.loads(run_cli(home, "executions", "list", "--json").stdout)
    follow = run_cli(home, "events", str(listed[0]["id"]), "--follow", timeout=30)
    assert follow.returncode == 1, follow.stderr
    flag.unlink()
    done = run_cli(home, "executions", "resume", str(listed[0]["id"]))
    assert done.returncode == 0, done.stderr
    follow = run_cli(home, "events", str(listed[0]["id"]), "--follow", timeout=30)
    assert follow.returncode == 0, follow.stderr


# 5. the dry run of a workflow that cannot resume ------------------------------------------


def test_the_dry_run_of_a_workflow_that_cannot_resume_says_only_that_it_fails(
    home: Path, store: Store, tmp_path: Path
) -> None:
    log, flag = tmp_path / "runs.log", tmp_path / "flag"
    flag.touch()
    done = run_cli(home, "run", "lifecycle_flows:fixable_once", *params(log=log, flag=flag))
    assert done.returncode == 1
    execution_id = only_execution(store)
    before = get(home, execution_id)

    plan = dry_run_text(home, store, execution_id)
    assert "fails at once" in plan and "no task runs" in plan
    assert dry_run(home, store, execution_id) == {}  # no line per task

    done = run_cli(home, "executions", "resume", execution_id)
    assert done.returncode == 1
    after = get(home, execution_id)
    assert after["error"] == "Cannot resume - workflow not resumable: lifecycle_flows:fixable_once"
    assert after["tasks"] == before["tasks"]  # nothing was reset, nothing ran
    assert [run["key"] for run in _lines(log)] == ["a", "fix"]
    messages = [event["message"] for event in events_of(home, execution_id)]
    assert any("is there" in message for message in messages)  # the earlier failure
