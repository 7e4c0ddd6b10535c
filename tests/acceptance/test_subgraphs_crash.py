"""Subgraphs through real crashes (docs/design.md, "Subgraphs and failure policies"): a
real `dalsegno run` SIGKILLed during a subgraph's reset, while it waits for its retry,
after an ignored failure inside a subgraph with retries, and inside a subgraph's task;
a cancel during a subgraph's retry wait; both backends.

Every run of a task appends `<key> ok|fail` to the log (tests/workflows/subgraphs.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from acceptance.test_crash_resume import (
    KILLED,
    LONG_LEASE,
    dry_run,
    get,
    kill_when,
    only_execution,
    resume,
    statuses,
    wait_for,
)
from conftest import run_cli, start_cli
from dalsegno.store import Store

pytestmark = pytest.mark.crash

REF = "subgraphs.py:tree"


def spec_args(log: Path, spec: dict[str, Any]) -> list[str]:
    return ["--params", json.dumps({"log": str(log), "spec": spec})]


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def subgraph(store: Store, execution_id: str, key: str) -> Any:
    graph = store.load_graphs(execution_id).get("main")
    return None if graph is None else next(s for s in graph.subgraphs if s.key == key)


def crash_run(home: Path, point: str, log: Path, spec: dict[str, Any]) -> None:
    done = run_cli(
        home, "run", REF, *spec_args(log, spec), timeout=30, DALSEGNO_CRASH_AT=point, **LONG_LEASE
    )
    assert done.returncode == KILLED, (done.stdout, done.stderr)


def chain(retries: int, fail: int, **sub: Any) -> dict[str, Any]:
    """a -> s(b -> c, c fails its first `fail` runs) -> e."""
    return {
        "nodes": [
            {"key": "a"},
            {
                "key": "s",
                "retries": retries,
                **sub,
                "sub": {"nodes": [{"key": "b"}, {"key": "c", "fail": fail}], "edges": [["c", "b"]]},
            },
            {"key": "e"},
        ],
        "edges": [["s", "a"], ["e", "s"]],
    }


def test_a_crash_during_a_subgraph_reset_resumes_to_the_same_end(
    home: Path, store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    crash_run(home, "subgraph_reset:s", log, chain(2, 1))
    execution_id = only_execution(store)
    # the reset and the retry count commit together: neither was written
    assert statuses(get(home, execution_id)) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "failed",
        "e": "pending",
    }
    crashed = subgraph(store, execution_id, "s")
    assert (crashed.status, crashed.retries) == ("pending", 0)

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    assert get(home, execution_id)["status"] == "completed"
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c ok", "e ok"]
    assert subgraph(store, execution_id, "s").retries == 1  # counted once


def test_a_crash_while_a_subgraph_waits_for_its_retry_keeps_the_wait(
    home: Path, store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    crash_run(home, "subgraph_retry_wait:s", log, chain(2, 1, interval=3))
    execution_id = only_execution(store)
    waiting = subgraph(store, execution_id, "s")
    assert (waiting.status, waiting.retries) == ("retrying", 1)
    assert waiting.next_run_at is not None
    assert statuses(get(home, execution_id)) == {
        "a": "succeeded",
        "b": "pending",
        "c": "pending",
        "e": "pending",
    }
    plan = dry_run(home, store, execution_id)
    assert plan == {"a": "kept", "b": "run", "c": "run", "e": "run", "s": "run"}
    shown = run_cli(home, "executions", "get", execution_id)
    assert shown.returncode == 0, shown.stderr
    assert "main/s  retrying  retries 1/2" in shown.stdout  # the subgraphs' tree
    assert get(home, execution_id)["subgraphs"][0]["retry_at"] is not None

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    assert get(home, execution_id)["status"] == "completed"
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c ok", "e ok"]
    b = next(t for t in store.list_tasks(execution_id) if t.key == "b")
    second = [a for a in store.list_attempts(execution_id) if a.task_id == b.id][-1]
    assert second.started_at >= waiting.next_run_at  # the wait went on where it was
    assert subgraph(store, execution_id, "s").retries == 1


def test_an_ignored_failure_inside_a_subgraph_with_retries_survives_a_crash(
    home: Path, store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = {
        "nodes": [
            {
                "key": "s",
                "retries": 2,
                "sub": {
                    "nodes": [{"key": "b", "fail": 9, "ignore": True}, {"key": "c"}],
                    "edges": [["c", "b"]],
                },
            },
            {"key": "e"},
        ],
        "edges": [["e", "s"]],
    }
    crash_run(home, "before_operation:c", log, spec)
    execution_id = only_execution(store)
    crashed = get(home, execution_id)
    assert statuses(crashed) == {"b": "failed", "c": "started", "e": "pending"}
    assert next(t for t in crashed["tasks"] if t["key"] == "b")["ignored"] is True
    shown = run_cli(home, "executions", "get", execution_id)
    assert "s/b" in shown.stdout and "failed (ignored)" in shown.stdout

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    document = get(home, execution_id)
    assert document["status"] == "completed"
    assert statuses(document) == {"b": "failed", "c": "succeeded", "e": "succeeded"}
    assert lines(log) == ["b fail", "c ok", "e ok"]  # b never retried, nor its subgraph
    assert subgraph(store, execution_id, "s").retries == 0


def test_a_cancel_during_a_subgraph_retry_wait_ends_it_and_a_resume_runs_it_again(
    home: Path, store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    proc = start_cli(home, "run", REF, *spec_args(log, chain(-1, 1, interval=120)))
    try:
        wait_for(
            lambda: (
                bool(store.list_executions())
                and (sub := subgraph(store, store.list_executions()[0].id, "s")) is not None
                and sub.status == "retrying"
            ),
            "the subgraph's retry wait",
            timeout=20,
        )
        execution_id = only_execution(store)
        began = time.monotonic()
        cancelled = run_cli(home, "executions", "cancel", execution_id)
        assert cancelled.returncode == 0, cancelled.stderr
        proc.wait(timeout=15)
        assert time.monotonic() - began < 10  # not the 120 s interval
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert get(home, execution_id)["status"] == "cancelled"
    assert subgraph(store, execution_id, "s").status == "retrying"
    assert dry_run(home, store, execution_id)["s"] == "reset"

    done = resume(home, execution_id)

    assert done.returncode == 0, done.stderr
    assert get(home, execution_id)["status"] == "completed"
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c ok", "e ok"]
    assert subgraph(store, execution_id, "s").retries == 0


def test_reset_operations_reruns_an_interrupted_task_inside_a_subgraph(
    home: Path, store: Store, tmp_path: Path
) -> None:
    log, hold = tmp_path / "log", tmp_path / "hold"
    hold.touch()
    spec = {
        "nodes": [
            {"key": "a"},
            {
                "key": "s",
                "sub": {
                    "nodes": [{"key": "b"}, {"key": "blk", "once": True, "hold": str(hold)}],
                    "edges": [["blk", "b"]],
                },
            },
            {"key": "e"},
        ],
        "edges": [["s", "a"], ["e", "s"]],
    }
    marker = Path(f"{hold}.running")
    kill_when(home, marker.exists, REF, *spec_args(log, spec))
    hold.unlink()
    execution_id = only_execution(store)
    assert statuses(get(home, execution_id))["blk"] == "started"
    # not resumable: a plain resume would fail it (and its subgraph, out of retries)
    assert dry_run(home, store, execution_id)["blk"] == "fail"
    plan = dry_run(home, store, execution_id, "--reset-operations")
    assert plan == {"a": "kept", "b": "kept", "blk": "reset", "e": "run", "s": "run"}

    done = resume(home, execution_id, "--reset-operations")

    assert done.returncode == 0, done.stderr
    assert get(home, execution_id)["status"] == "completed"
    assert lines(log) == ["a ok", "b ok", "blk ok", "e ok"]  # the killed run wrote nothing
