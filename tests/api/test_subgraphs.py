"""Subgraphs and ignored failures over REST and in the web UI's templates: `GET
/executions/ID` says which failures are ignored and which subgraph each task is in; the
dry-run plan (and the UI's resume page) lists the subgraphs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx

from dalsegno.service.executions import ExecutionService
from dalsegno.ui.rendering import environment

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
    (sub,) = found["subgraphs"]
    assert {key: sub[key] for key in ("graph", "key", "parent", "status", "retries")} == {
        "graph": "main",
        "key": "s",
        "parent": None,
        "status": "failed",
        "retries": 1,
    }
    assert (sub["max_retries"], sub["on_failure"], sub["ignored"], sub["retry_at"]) == (
        1,
        "fail",
        False,
        None,
    )
    assert sub["error"].endswith("RuntimeError: b failed run 2 after 1 retry")
    plan = client.post(f"/executions/{execution_id}/resume", json={"dry_run": True}).json()
    assert [(s["key"], s["status"], s["retries"], s["action"]) for s in plan["subgraphs"]] == [
        ("s", "failed", 1, "reset")
    ]
    assert {task["key"]: task["action"] for task in plan["tasks"]} == {"a": "reset", "b": "reset"}


def test_the_web_ui_resume_page_lists_the_subgraphs_and_the_task_page_shows_ignored(
    service: ExecutionService, tmp_path: Path
) -> None:
    spec = {
        "nodes": [
            {"key": "a", "fail": 9, "ignore": True},
            {"key": "s", "retries": 1, "sub": {"nodes": [{"key": "b", "fail": 9}]}},
        ],
        "edges": [["s", "a"]],
    }
    execution_id = service.start(TREE, {"log": str(tmp_path / "log"), "spec": spec}).execution_id
    plan = service.plan(execution_id)
    session = SimpleNamespace(
        csrf="c", actor="alice", role="admin", signed_in=True, may=lambda *_: True
    )
    env = environment()

    page = env.get_template("resume.html").render(
        plan=plan, counts=plan.counts(), rows=plan.tasks, reset=False, session=session
    )

    assert '<table id="plan-subgraphs">' in page
    assert '<tr data-key="s" data-action="reset">' in page
    assert "failed: reset with every task inside, retry count 0" in page
    detail = service.task_detail(
        execution_id, next(t.id for t in service.get(execution_id)[1] if t.key == "a")
    )
    summary = env.get_template("_task_summary.html").render(detail=detail, session=session)
    assert '<span class="badge s-ignored">failed (ignored)</span>' in summary
