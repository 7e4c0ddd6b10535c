"""Failure policies and subgraph retries (docs/design.md, "Subgraphs and failure
policies"): ignored failures, a subgraph that retries as a unit, runs out of retries,
nests, retries forever, is cancelled while it waits, and is resumed by a person; both
backends, in process, real store."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from dalsegno.service.executions import ExecutionService
from integration.test_engine_cancel import Background, wait_for
from integration.test_engine_subgraphs import lines, ref, run_tree, states

STEP = f"{Path(__file__).resolve().parents[1] / 'workflows' / 'subgraphs.py'}:step"


def subgraphs(service: ExecutionService, execution_id: str) -> dict[str, Any]:
    graph = service.store.load_graphs(execution_id).get("main")
    return {} if graph is None else {sub.key: sub for sub in graph.subgraphs}


def messages(service: ExecutionService, execution_id: str, kind: str) -> list[str]:
    return [e.message for e in service.events(execution_id) if e.type == kind]


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


def test_an_ignored_task_failure_lets_its_dependents_run_and_the_execution_complete(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = {
        "nodes": [{"key": "a", "fail": 9, "ignore": True}, {"key": "b"}],
        "edges": [["b", "a"]],
    }
    execution_id = run_tree(service, log, spec)

    execution, tasks = service.get(execution_id)
    assert (execution.status, execution.error) == ("completed", None)
    failed = next(task for task in tasks if task.key == "a")
    assert (failed.status.value, failed.on_failure, failed.ignored) == ("failed", "ignore", True)
    assert lines(log) == ["a fail", "b ok"]
    said = messages(service, execution_id, "task_failed")
    assert said == ["Task failed 'a' -> RuntimeError: a failed run 1 (ignored: its dependents run)"]


def test_a_subgraph_retries_as_a_unit_and_its_retry_count_is_stored(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    execution_id = run_tree(service, log, chain(2, 2, interval=0.3))

    execution = service.get(execution_id)[0]
    assert execution.error is None
    assert execution.status == "completed"
    # b succeeded before each retry and ran again with its subgraph; a and e ran once
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c fail", "b ok", "c ok", "e ok"]
    sub = subgraphs(service, execution_id)["s"]
    assert (sub.status, sub.retries) == ("pending", 2)
    said = messages(service, execution_id, "subgraph_retrying")
    assert len(said) == 2
    assert said[0].startswith("Subgraph failed 's' -> task 'c' (")
    assert said[0].endswith("RuntimeError: c failed run 1; 2 tasks reset to pending [retry 1/2]")
    # each retry waited its interval: b's runs are at least 0.3 s apart
    starts = sorted(
        attempt.started_at
        for attempt in service.store.list_attempts(execution_id)
        if attempt.task_id == next(t.id for t in service.get(execution_id)[1] if t.key == "b")
    )
    assert all(later - earlier >= 0.3 for earlier, later in itertools.pairwise(starts))


def test_out_of_retries_the_subgraph_fails_naming_the_task_and_blocks_its_dependents(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    execution_id = run_tree(service, log, chain(1, 9))

    execution = service.get(execution_id)[0]
    assert execution.status == "failed"
    assert execution.error == (
        f"1 subgraph failed in graph 'main': 's': task 'c' ({STEP}): "
        "RuntimeError: c failed run 2 after 1 retry"
    )
    assert states(service, execution_id) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "failed",
        "e": "pending",
    }
    sub = subgraphs(service, execution_id)["s"]
    assert (sub.status, sub.retries) == ("failed", 1)
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c fail"]


def test_an_ignored_subgraph_with_retries_retries_then_lets_its_dependents_run(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    execution_id = run_tree(service, log, chain(1, 9, ignore=True))

    execution = service.get(execution_id)[0]
    assert (execution.status, execution.error) == ("completed", None)
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c fail", "e ok"]
    sub = subgraphs(service, execution_id)["s"]
    assert (sub.status, sub.retries, sub.ignored) == ("failed", 1, True)
    (said,) = messages(service, execution_id, "subgraph_failed")
    assert said.endswith("after 1 retry (ignored: its dependents run)")


def test_an_ignored_task_inside_a_subgraph_does_not_make_it_retry(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = {
        "nodes": [
            {
                "key": "s",
                "retries": 3,
                "sub": {
                    "nodes": [{"key": "b", "fail": 9, "ignore": True}, {"key": "c"}],
                    "edges": [["c", "b"]],
                },
            },
            {"key": "e"},
        ],
        "edges": [["e", "s"]],
    }
    execution_id = run_tree(service, log, spec)

    assert service.get(execution_id)[0].status == "completed"
    assert lines(log) == ["b fail", "c ok", "e ok"]
    assert subgraphs(service, execution_id)["s"].retries == 0


def test_a_nested_subgraph_out_of_retries_makes_its_parent_retry(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = {
        "nodes": [
            {
                "key": "s",
                "retries": 1,
                "sub": {
                    "nodes": [
                        {"key": "b"},
                        {"key": "t", "retries": 1, "sub": {"nodes": [{"key": "c", "fail": 3}]}},
                    ],
                    "edges": [["t", "b"]],
                },
            },
        ],
    }
    execution_id = run_tree(service, log, spec)

    assert service.get(execution_id)[0].status == "completed"
    # t: c fails, t retries, c fails: t is out; s retries (t's count back to 0): c fails,
    # t retries, c succeeds
    assert lines(log) == ["b ok", "c fail", "c fail", "b ok", "c fail", "c ok"]
    found = subgraphs(service, execution_id)
    assert (found["s"].retries, found["t"].retries) == (1, 1)


def test_retries_minus_one_retry_until_success(service: ExecutionService, tmp_path: Path) -> None:
    log = tmp_path / "log"
    spec = {
        "nodes": [
            {"key": "a", "fail": 4, "retries": -1},
            {"key": "s", "retries": -1, "sub": {"nodes": [{"key": "b", "fail": 3}]}},
        ],
    }
    execution_id = run_tree(service, log, spec)

    assert service.get(execution_id)[0].status == "completed"
    assert lines(log).count("a fail") == 4
    assert lines(log).count("b fail") == 3
    assert subgraphs(service, execution_id)["s"].retries == 3
    said = messages(service, execution_id, "task_rescheduled")
    assert said[0] == "Task failed 'a' -> RuntimeError: a failed run 1 [retry 1/unlimited]"


def test_a_cancel_while_a_subgraph_waits_for_its_retry_ends_cancelled_and_a_resume_runs_it(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = Background(service, ref("tree"), {"log": str(log), "spec": chain(-1, 1, interval=60)})
    wait_for(
        lambda: (
            subgraphs(service, run.execution_id).get("s") is not None
            and subgraphs(service, run.execution_id)["s"].status == "retrying"
        ),
        what="the subgraph's retry wait",
    )
    began = time.monotonic()
    service.cancel(run.execution_id)
    run.join(10)
    assert time.monotonic() - began < 5  # the 60 s wait did not hold the cancel
    assert service.get(run.execution_id)[0].status == "cancelled"
    waiting = subgraphs(service, run.execution_id)["s"]
    assert (waiting.status, waiting.retries) == ("retrying", 1)
    assert waiting.next_run_at is not None and waiting.next_run_at > time.time() + 50

    plan = {sub.key: sub.action for sub in service.plan(run.execution_id).subgraphs}
    assert plan == {"s": "reset"}
    service.resume(run.execution_id)

    assert service.get(run.execution_id)[0].status == "completed"
    assert lines(log) == ["a ok", "b ok", "c fail", "b ok", "c ok", "e ok"]
    assert subgraphs(service, run.execution_id)["s"].retries == 0


def test_a_resume_of_a_subgraph_out_of_retries_resets_its_tasks_and_its_retry_count(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    execution_id = run_tree(service, log, chain(1, 3))
    assert service.get(execution_id)[0].status == "failed"
    assert subgraphs(service, execution_id)["s"].retries == 1

    plan = service.plan(execution_id)
    assert {task.key: task.action for task in plan.tasks} == {
        "a": "kept",
        "b": "reset",
        "c": "reset",
        "e": "run",
    }
    assert [(sub.key, sub.action, sub.reason) for sub in plan.subgraphs] == [
        ("s", "reset", "failed: reset with every task inside, retry count 0")
    ]
    service.resume(execution_id)

    assert service.get(execution_id)[0].status == "completed"
    # the resume ran s afresh: c failed once more (its 3rd run), s retried once (count 1)
    assert lines(log) == [
        "a ok", "b ok", "c fail", "b ok", "c fail", "b ok", "c fail", "b ok", "c ok", "e ok"
    ]  # fmt: skip
    sub = subgraphs(service, execution_id)["s"]
    assert (sub.status, sub.retries) == ("pending", 1)
    resets = messages(service, execution_id, "task_reset")
    assert sorted(resets) == [
        "Task reset 'b' (succeeded -> pending)",
        "Task reset 'c' (failed -> pending)",
    ]
