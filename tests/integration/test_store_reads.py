"""The web UI's reads (dalsegno.store.reads, through the service) on both backends."""

from __future__ import annotations

import pytest

from conftest import WORKFLOWS
from dalsegno.model.errors import NotFoundError, RefusedError
from dalsegno.service.executions import ExecutionService

FLOWS = WORKFLOWS / "ui_flows.py"


def ref(name: str) -> str:
    return f"{FLOWS}:{name}"


def test_overview_is_newest_first_with_progress_and_filters(service: ExecutionService) -> None:
    flag = WORKFLOWS.parent.parent / "pyproject.toml"  # exists: the gate fails
    failed = service.start(ref("fixable"), {"flag": str(flag)}).execution_id
    done = service.start(ref("wide"), {"n": 3}).execution_id
    pending = service.create(ref("slow"), {"steps": 1}).id
    found = service.overview()
    assert [s.execution.id for s in found] == [pending, done, failed]
    assert [(s.done, s.total) for s in found] == [(0, 0), (3, 3), (2, 4)]
    assert [s.execution.id for s in service.overview(status="failed")] == [failed]
    assert [s.execution.id for s in service.overview(workflow=ref("wide"))] == [done]
    assert [s.execution.id for s in service.overview(limit=1)] == [pending]
    assert service.workflows() == sorted([ref("fixable"), ref("wide"), ref("slow")])
    with pytest.raises(RefusedError, match="unknown status"):
        service.overview(status="nope")
    with pytest.raises(RefusedError, match="limit"):
        service.overview(limit=0)


def test_task_detail_has_the_attempts_and_log_lines_of_that_task_only(
    service: ExecutionService,
) -> None:
    flag = WORKFLOWS.parent.parent / "pyproject.toml"
    execution_id = service.start(ref("fixable"), {"flag": str(flag)}).execution_id
    _, graphs = service.graphs(execution_id)
    by_key = {task.key: task for task in graphs["main"].tasks}
    assert len(graphs["main"].edges) == 2
    detail = service.task_detail(execution_id, by_key["gate"].id)
    assert detail.task.key == "gate"
    assert detail.task.graph == "main"
    assert [attempt.outcome for attempt in detail.attempts] == ["failed"]
    assert {e.task_key for e in detail.events} == {"gate"}
    assert any(f"the flag {flag} is still there" in e.message for e in detail.events)
    with pytest.raises(NotFoundError):
        service.task_detail(execution_id, by_key["gate"].id + 1000)
    last = service.last_events(execution_id, 3)
    every = service.events(execution_id)
    assert [e.id for e in last] == [e.id for e in every[-3:]]


def test_allowed_actions_follow_the_state(service: ExecutionService) -> None:
    flag = WORKFLOWS.parent.parent / "pyproject.toml"
    failed = service.find(service.start(ref("fixable"), {"flag": str(flag)}).execution_id)
    assert service.allowed_actions(failed) == ["resume"]
    pending = service.create(ref("slow"), {"steps": 1})
    assert service.allowed_actions(pending) == ["cancel"]
    completed = service.find(service.start(ref("wide"), {"n": 1}).execution_id)
    assert service.allowed_actions(completed) == []


def test_the_outline_of_the_graphs_is_the_graphs_without_arguments_and_results(
    service: ExecutionService,
) -> None:
    flag = WORKFLOWS.parent.parent / "pyproject.toml"
    execution_id = service.start(ref("fixable"), {"flag": str(flag)}).execution_id
    whole = service.store.load_graphs(execution_id)
    outline = service.store.load_graph_outlines(execution_id)
    assert list(outline) == list(whole)
    for name, graph in whole.items():
        slim = outline[name]
        assert (slim.id, slim.name, sorted(slim.edges)) == (
            graph.id,
            graph.name,
            sorted(graph.edges),
        )
        for full, light in zip(graph.tasks, slim.tasks, strict=True):
            kept = ("id", "graph", "key", "operation", "agent", "status", "retries", "error",
                    "attempts", "next_run_at", "started_at", "ended_at")  # fmt: skip
            assert {f: getattr(light, f) for f in kept} == {f: getattr(full, f) for f in kept}
            assert (light.kwargs_json, light.result_json) == ("{}", None)
