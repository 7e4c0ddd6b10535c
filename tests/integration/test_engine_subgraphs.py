"""Subgraphs (docs/design.md, "Subgraphs"): one node in their parent, stored with the
graph and restored on resume; both backends, in process, real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dalsegno.service.executions import ExecutionService

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows" / "subgraphs.py"


def ref(name: str) -> str:
    return f"{WORKFLOWS}:{name}"


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def run_tree(service: ExecutionService, log: Path, spec: dict[str, Any]) -> str:
    return service.start(ref("tree"), {"log": str(log), "spec": spec}).execution_id


def states(service: ExecutionService, execution_id: str) -> dict[str, str]:
    return {task.key: task.status.value for task in service.get(execution_id)[1]}


NESTED = {
    "nodes": [
        {"key": "a"},
        {
            "key": "s",
            "sub": {
                "nodes": [
                    {"key": "b"},
                    {"key": "c"},
                    {"key": "t", "sub": {"nodes": [{"key": "d"}]}},
                ],
                "edges": [["c", "b"], ["c", "t"]],
            },
        },
        {"key": "e"},
    ],
    "edges": [["s", "a"], ["e", "s"]],
}


def test_a_subgraph_is_one_node_of_its_parent(service: ExecutionService, tmp_path: Path) -> None:
    log = tmp_path / "log"
    execution_id = run_tree(service, log, NESTED)

    assert service.get(execution_id)[0].status == "completed"
    order = [line.split()[0] for line in lines(log)]
    assert order[0] == "a" and order[-1] == "e"  # s waits for a; e waits for all of s
    assert order.index("c") > max(order.index("b"), order.index("d"))
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    tasks = {task.key: task for task in service.get(execution_id)[1]}
    assert {key: task.subgraph for key, task in tasks.items()} == {
        "a": None,
        "b": "s",
        "c": "s",
        "d": "t",
        "e": None,
    }
    stored = service.store.load_graphs(execution_id)["main"]
    assert [(sub.key, sub.parent) for sub in stored.subgraphs] == [("s", None), ("t", "s")]
    assert sorted(stored.node_edges) == [("c", "t"), ("e", "s"), ("s", "a")]


def test_a_resume_restores_the_subgraphs_and_reruns_nothing_that_succeeded(
    service: ExecutionService, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    spec = {
        "nodes": [
            {"key": "s", "sub": {"nodes": [{"key": "a"}, {"key": "b"}], "edges": [["b", "a"]]}},
            {"key": "c", "fail": 1},
        ],
        "edges": [["c", "s"]],
    }
    execution_id = run_tree(service, log, spec)
    assert service.get(execution_id)[0].status == "failed"

    service.resume(execution_id)

    assert service.get(execution_id)[0].status == "completed"
    assert lines(log) == ["a ok", "b ok", "c fail", "c ok"]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("subgraph", "Cannot resume - subgraph 'other' is not in the stored graph 'main'"),
        ("task", "Cannot resume - task 'extra' is not in the stored graph 'main/s'"),
        ("edge", "Cannot resume - dependency 's' -> 'b' is not in the stored graph 'main'"),
        ("level", "is not a node of the graph"),
    ],
)
def test_a_resume_refuses_what_the_stored_graph_lacks(
    service: ExecutionService, tmp_path: Path, change: str, said: str
) -> None:
    log = tmp_path / "log"
    run = service.start(ref("drifting"), {"log": str(log), "change": change})
    assert service.get(run.execution_id)[0].status == "failed"

    service.resume(run.execution_id)

    execution = service.get(run.execution_id)[0]
    assert execution.status == "failed"
    assert said in (execution.error or "")
    assert lines(log) == ["a ok", "b fail"]


@pytest.mark.parametrize(
    ("build", "said"),
    [
        ("dup", "duplicate task key 's'"),
        ("empty", "subgraph 'e' has no tasks"),
        ("cycle", "dependency cycle"),
        ("policy", "on_failure must be 'fail' or 'ignore'"),
        ("option", "unknown task option(s) colour"),
    ],
)
def test_bad_subgraphs_are_refused_in_one_line(
    service: ExecutionService, tmp_path: Path, build: str, said: str
) -> None:
    run = service.start(ref("bad"), {"log": str(tmp_path / "log"), "build": build})

    execution = service.get(run.execution_id)[0]
    assert execution.status == "failed"
    assert said in (execution.error or "")
    assert "\n" not in (execution.error or "")
    assert service.get(run.execution_id)[1] == []
