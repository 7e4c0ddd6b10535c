"""Subgraphs and ignored failures over REST: `GET /executions/ID` says which failures are
ignored and which subgraph each task is in; the dry-run plan lists the subgraphs."""

from __future__ import annotations

from pathlib import Path

import httpx

from dalsegno.service.executions import ExecutionService

TREE = f"{Path(__file__).resolve().parents[1] / 'workflows' / 'subgraphs.py'}:tree"


def test_get_shows_ignored_failures_and_subgraphs_and_the_plan_lists_subgraphs(
    client: httpx.Client, service: ExecutionService, tmp_path: Path
) -> None:
    spec = {
        "nodes": [
            {"key": "a", "fail": 9, "ignore": True},
            {"key": "s", "retries": 1, "sub": {"nodes": [{"key": "b", "fail": 9}]}},
        ],
        "edges": [["s", "a"]],
    }
    execution_id = service.start(TREE, {"log": str(tmp_path / "log"), "spec": spec}).execution_id

    found = client.get(f"/executions/{execution_id}").json()

    assert found["status"] == "failed"
    tasks = {task["key"]: task for task in found["tasks"]}
    assert (tasks["a"]["status"], tasks["a"]["ignored"], tasks["a"]["subgraph"]) == (
        "failed",
        True,
        None,
    )
    assert (tasks["b"]["status"], tasks["b"]["ignored"], tasks["b"]["subgraph"]) == (
        "failed",
        False,
        "s",
    )
    plan = client.post(f"/executions/{execution_id}/resume", json={"dry_run": True}).json()
    assert [(s["key"], s["status"], s["retries"], s["action"]) for s in plan["subgraphs"]] == [
        ("s", "failed", 1, "reset")
    ]
    assert {task["key"]: task["action"] for task in plan["tasks"]} == {"a": "reset", "b": "reset"}
