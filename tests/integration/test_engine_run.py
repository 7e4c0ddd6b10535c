"""The engine runs graphs as docs/interface.md's Python API says (in process, real SQLite file).

Keys, operation arguments, cycles, JSON results, `g.execute()` results, what `ctx` holds,
task logs as events, and the failure rules of docs/design.md section 4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dalsegno.model.records import EventRecord, TaskRecord
from dalsegno.service.executions import ExecutionService

BEHAVIOUR = Path(__file__).resolve().parents[1] / "workflows" / "behaviour.py"


def ref(name: str) -> str:
    return f"{BEHAVIOUR}:{name}"


def reports(service: ExecutionService, execution_id: str) -> dict[str, Any]:
    """What the workflow logged as `REPORT <name> <json>`."""
    found: dict[str, Any] = {}
    for event in service.events(execution_id):
        if event.type == "log" and event.message.startswith("REPORT "):
            _, name, payload = event.message.split(" ", 2)
            found[name] = json.loads(payload)
    return found


def tasks_by_key(service: ExecutionService, execution_id: str) -> dict[str, TaskRecord]:
    return {task.key: task for task in service.get(execution_id)[1]}


def messages(events: list[EventRecord]) -> list[str]:
    return [event.message for event in events]


# keys and arguments ------------------------------------------------------------------


def test_automatic_keys_count_occurrences_of_an_operation(service: ExecutionService) -> None:
    run = service.start(ref("keys"))

    execution, _ = service.get(run.execution_id)
    assert execution.status == "completed", execution.error
    seen = reports(service, run.execution_id)
    assert seen["keys"] == ["echo", "echo#2", "custom", "echo#3", "needs"]
    stored = tasks_by_key(service, run.execution_id)
    assert list(stored) == ["echo", "echo#2", "custom", "echo#3", "needs"]
    # A string reference names the same operation as the function.
    assert {stored[key].operation for key in ("echo", "echo#2", "custom", "echo#3")} == {
        ref("echo")
    }


def test_execute_returns_the_json_results_by_key(service: ExecutionService) -> None:
    run = service.start(ref("keys"))

    results = reports(service, run.execution_id)["results"]
    assert results == {
        "echo": {"value": 1, "key": "echo"},
        "echo#2": {"value": 2, "key": "echo#2"},
        "custom": {"value": 3, "key": "custom"},
        "echo#3": {"value": 4, "key": "echo#3"},
        "needs": {"alpha": 5, "beta": 1},
    }
    stored = tasks_by_key(service, run.execution_id)
    assert {key: task.result for key, task in stored.items()} == results


def test_add_refuses_ambiguous_missing_and_unknown_arguments(service: ExecutionService) -> None:
    run = service.start(ref("arguments"))

    execution, _ = service.get(run.execution_id)
    assert execution.status == "completed", execution.error
    refused = reports(service, run.execution_id)["refused"]
    for name, (kind, *message) in refused.items():
        assert kind == "GraphError", f"{name}: {kind} {message}"
    assert "key" in refused["ambiguous_key"][1]
    assert "kwargs" in refused["ambiguous_key"][1]
    assert "timeout" in refused["ambiguous_timeout"][1]
    assert "missing" in refused["missing"][1]
    assert "alpha" in refused["missing"][1]
    assert "alpha" in refused["missing_in_kwargs"][1]
    assert "gamma" in refused["unknown"][1]
    assert "delta" in refused["unknown_in_kwargs"][1]
    assert "alpha" in refused["given_twice"][1]


def test_bare_keywords_and_kwargs_reach_the_operation(service: ExecutionService) -> None:
    run = service.start(ref("arguments"))

    seen = reports(service, run.execution_id)
    # Refused calls are not occurrences: the numbering has no holes.
    assert seen["keys"] == ["needs", "needs#2", "needs#3", "with_options"]
    assert seen["results"] == {
        "needs": {"alpha": 1, "beta": 2},
        "needs#2": {"alpha": 3, "beta": 1},
        "needs#3": {"alpha": 4, "beta": 5},
        "with_options": {"key": "op-key", "timeout": 7, "label": "y", "task_key": "with_options"},
    }
    stored = tasks_by_key(service, run.execution_id)
    assert list(stored) == seen["keys"]  # nothing refused was stored
    # `timeout` inside kwargs= went to the operation, not to the task's options.
    assert stored["with_options"].timeout is None
    assert stored["with_options"].kwargs == {"key": "op-key", "timeout": 7, "label": "y"}


def test_a_cycle_fails_the_execution_naming_its_tasks(service: ExecutionService) -> None:
    run = service.start(ref("cycle"))

    execution, tasks = service.get(run.execution_id)
    assert execution.status == "failed"
    error = execution.error or ""
    assert "cycle" in error
    for key in ("first", "second", "third"):
        assert key in error
    assert "free" not in error
    assert tasks == []  # the graph was never stored, nothing ran
    assert not [e for e in service.events(run.execution_id) if e.type == "task_started"]
    assert error in messages(service.events(run.execution_id))[-1]


def test_a_result_that_is_not_json_fails_the_task_clearly(service: ExecutionService) -> None:
    run = service.start(ref("bad_result"))

    execution, _ = service.get(run.execution_id)
    stored = tasks_by_key(service, run.execution_id)
    assert execution.status == "failed"
    assert stored["weird"].status == "failed"
    assert "not JSON" in (stored["weird"].error or "")
    assert stored["weird"].result is None
    assert stored["fine"].status == "succeeded"
    assert "'weird'" in (execution.error or "")
    assert "not JSON" in (execution.error or "")


# ctx ---------------------------------------------------------------------------------


def test_workflow_ctx_params_and_resume(service: ExecutionService) -> None:
    run = service.start(ref("params"), {"name": "web", "count": 3})

    execution, _ = service.get(run.execution_id)
    assert execution.status == "completed", execution.error
    assert execution.params == {"name": "web", "count": 3}
    seen = reports(service, run.execution_id)
    assert seen["params"] == {"name": "web", "count": 3}
    assert seen["arguments"] == {"name": "web", "count": 3, "extra": None}
    assert seen["resume"] is False
    assert seen["execution_id"] == run.execution_id


def probes_seen(service: ExecutionService, execution_id: str) -> dict[str, list[dict[str, Any]]]:
    """What each probe attempt logged of its ctx, by task key, in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in service.events(execution_id):
        if event.type == "log" and event.message.startswith("PROBE "):
            seen = json.loads(event.message.removeprefix("PROBE "))
            assert event.task_key == seen["task_key"]
            found.setdefault(seen["task_key"], []).append(seen)
    return found


def test_operation_ctx_across_retries(service: ExecutionService) -> None:
    run = service.start(ref("probes"), {"count": 2, "fail_times": 2, "retries": 3, "interval": 0.0})

    execution, _ = service.get(run.execution_id)
    assert execution.status == "completed", execution.error
    seen = probes_seen(service, run.execution_id)
    assert sorted(seen) == ["p0", "p1"]
    for key, attempts in seen.items():
        assert [a["retries"] for a in attempts] == [0, 1, 2]
        assert {a["execution_id"] for a in attempts} == {run.execution_id}
        assert {a["resume"] for a in attempts} == {False}
        assert len({a["idempotency_key"] for a in attempts}) == 1, key
        assert attempts[0]["idempotency_key"]
    assert seen["p0"][0]["idempotency_key"] != seen["p1"][0]["idempotency_key"]


def test_task_logs_are_events_of_the_task_before_its_success(service: ExecutionService) -> None:
    run = service.start(ref("log_lines"))

    assert service.get(run.execution_id)[0].status == "completed"
    events = service.events(run.execution_id)
    ids = [int(event.id) for event in events]
    assert ids == sorted(ids)
    hello = [e for e in events if e.message == "workflow says hello"]
    assert len(hello) == 1
    assert (hello[0].type, hello[0].graph, hello[0].task_key) == ("log", None, None)
    for key, lines in (("talker", 3), ("other", 2)):
        logged = [e for e in events if e.type == "log" and e.task_key == key]
        assert [e.message for e in logged] == [
            *(f"line {n} of {key}" for n in range(1, lines + 1)),
            f"warned by {key}",
        ]
        assert {e.graph for e in logged} == {"main"}
        assert [e.level for e in logged] == ["info"] * lines + ["warning"]
        position = {id(e): i for i, e in enumerate(events)}
        started = next(e for e in events if e.message == f"Task started '{key}'")
        succeeded = next(e for e in events if e.message == f"Task succeeded '{key}'")
        for event in logged:
            assert position[id(started)] < position[id(event)] < position[id(succeeded)]


# docs/design.md section 4: failure ---------------------------------------------------------


def test_a_failed_task_blocks_its_dependents_only(service: ExecutionService) -> None:
    run = service.start(ref("blocking"))

    execution, _ = service.get(run.execution_id)
    stored = tasks_by_key(service, run.execution_id)
    assert execution.status == "failed"
    assert {key: task.status for key, task in stored.items()} == {
        "bad": "failed",
        "child": "pending",
        "grandchild": "pending",
        "also_bad": "failed",
        "slow_ok": "succeeded",
        "after_slow": "succeeded",
        "mixed": "pending",
    }
    # Independent work ran to its end after the first failure.
    assert (stored["after_slow"].ended_at or 0) > (stored["bad"].ended_at or 0)
    # Nothing that did not run is marked as run.
    blocked = {"child", "grandchild", "mixed"}
    for key in blocked:
        task = stored[key]
        assert (task.attempts, task.retries, task.started_at, task.ended_at) == (0, 0, None, None)
        assert task.error is None
        assert task.result is None
    attempted = {attempt.task_id for attempt in service.store.list_attempts(run.execution_id)}
    assert attempted.isdisjoint({stored[key].id for key in blocked})
    assert not [e for e in service.events(run.execution_id) if e.task_key in blocked]


def test_the_execution_error_names_every_failed_task(service: ExecutionService) -> None:
    run = service.start(ref("blocking"))

    error = service.get(run.execution_id)[0].error or ""
    assert f"'bad' ({ref('fail')}): NonRecoverableError: disk full" in error
    assert f"'also_bad' ({ref('fail')}): RuntimeError: quota exceeded" in error
    for key in ("child", "grandchild", "mixed", "slow_ok", "after_slow"):
        assert f"'{key}'" not in error
    last = service.events(run.execution_id)[-1]
    assert last.message == f"'blocking' workflow execution failed: {error}"
    assert last.level == "error"


def test_a_workflow_may_catch_a_failed_graph(service: ExecutionService) -> None:
    run = service.start(ref("catches"))

    execution, tasks = service.get(run.execution_id)
    assert execution.status == "completed", execution.error
    seen = reports(service, run.execution_id)
    assert "'bad'" in seen["caught"]
    assert "nope" in seen["caught"]
    assert seen["cleanup"] == {"tidy": {"value": "tidied", "key": "tidy"}}
    assert {(t.graph, t.key): t.status for t in tasks} == {
        ("main", "bad"): "failed",
        ("cleanup", "tidy"): "succeeded",
    }
