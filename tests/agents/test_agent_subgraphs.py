"""An agent task inside a subgraph whose agent dies (issue 15; docs/design.md,
"Subgraphs and failure policies", and docs/agents.md on lost holders), with a real
manager and real agent processes killed with SIGKILL, on both backends.

A lost attempt is the task's business first: a resumable operation is queued again and
runs on the restarted agent with `ctx.resume` true, and its subgraph never knows (no
retry counted). A non-resumable one fails with the documented message; that is a
terminal failure inside the subgraph, which retries as a unit: every task inside back to
`pending`, the retry counted, and the task runs afresh on the restarted agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.processes import Cluster, runs, wait_for
from dalsegno.store import open_store

pytestmark = pytest.mark.crash

FLOW = "agent_subgraphs:installed"
LOST = "operation interrupted on agent {agent} and not resumable: blk (agent_flows:block_once)"


@pytest.fixture
def cluster(home: Path, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(home, tmp_path)
    yield running
    running.stop_all()


def lose_the_agent_of_blk(cluster: Cluster, tmp_path: Path, resumable: bool) -> tuple[str, Path]:
    """Start the execution, SIGKILL the agent while `blk` runs on it, start another agent
    in its place; returns the execution and the file that holds `blk`."""
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    cluster.start_manager()
    cluster.start_agent("agent-1")
    execution_id = cluster.start(
        FLOW, log=str(log), marker=str(marker), hold=str(hold), resumable=resumable
    )
    wait_for(marker.exists, what="for blk to begin on agent-1")
    cluster.agents["agent-1"].kill()
    cluster.agents["agent-1"].wait(10)
    marker.unlink()
    cluster.start_agent("agent-2")  # the agent restarted (a new process, a new name)
    return execution_id, hold


def subgraph(cluster: Cluster, execution_id: str) -> dict[str, object]:
    (found,) = cluster.get(execution_id)["subgraphs"]
    return found


def attempts(store_url: str, execution_id: str, key: str) -> list[tuple[str, str | None]]:
    store = open_store(store_url)
    try:
        (task,) = store.find_tasks_by_key(execution_id, key)
        return [(a.outcome, a.error) for a in store.list_task_attempts(task.id)]
    finally:
        store.close()


def test_a_resumable_agent_task_is_queued_again_and_its_subgraph_does_not_retry(
    cluster: Cluster, tmp_path: Path, store_url: str
) -> None:
    execution_id, hold = lose_the_agent_of_blk(cluster, tmp_path, resumable=True)
    wait_for(lambda: len(runs(tmp_path / "runs.log").get("blk", [])) == 2, 30,
             "for blk to run again")  # fmt: skip
    hold.unlink()
    wait_for(lambda: cluster.status(execution_id) == "completed", 30, "for the execution")
    found = runs(tmp_path / "runs.log")
    assert [(run["agent"], run["resume"]) for run in found["blk"]] == [
        ("agent-1", False),
        ("agent-2", True),
    ]
    assert [run["agent"] for run in found["c"]] == ["agent-2"]
    assert [len(found["a"]), len(found["d"])] == [1, 1]
    sub = subgraph(cluster, execution_id)
    assert (sub["key"], sub["status"], sub["retries"], sub["max_retries"]) == (
        "install", "pending", 0, 2,
    )  # fmt: skip
    blk = cluster.task(execution_id, "blk")
    assert (blk["status"], blk["retries"]) == ("succeeded", 0)
    assert attempts(store_url, execution_id, "blk") == [
        ("lost", "agent agent-1 missed heartbeats"),
        ("succeeded", None),
    ]


def test_a_non_resumable_agent_task_fails_and_its_subgraph_retries_and_completes(
    cluster: Cluster, tmp_path: Path, store_url: str
) -> None:
    execution_id, hold = lose_the_agent_of_blk(cluster, tmp_path, resumable=False)
    # the lost attempt fails blk with the documented message; install retries at once:
    # blk is reset to pending and runs afresh, on agent-2, where it blocks again
    wait_for((tmp_path / "began").exists, 30, "for blk to run again on agent-2")
    sub = subgraph(cluster, execution_id)
    assert (sub["status"], sub["retries"]) == ("pending", 1)
    reason = LOST.format(agent="agent-1")
    assert sub["error"] == f"task 'blk' (agent_flows:block_once): {reason}"
    hold.unlink()
    wait_for(lambda: cluster.status(execution_id) == "completed", 30, "for the execution")
    found = runs(tmp_path / "runs.log")
    assert [(run["agent"], run["retries"]) for run in found["blk"]] == [
        ("agent-1", 0),
        ("agent-2", 0),
    ]
    assert found["blk"][0]["resume"] is False
    assert [run["agent"] for run in found["c"]] == ["agent-2"]
    assert [len(found["a"]), len(found["d"])] == [1, 1]
    sub = subgraph(cluster, execution_id)
    assert (sub["status"], sub["retries"], sub["max_retries"]) == ("pending", 1, 2)
    blk = cluster.task(execution_id, "blk")
    assert (blk["status"], blk["retries"], blk["error"]) == ("succeeded", 0, None)
    assert attempts(store_url, execution_id, "blk") == [
        ("lost", "agent agent-1 missed heartbeats"),
        ("succeeded", None),
    ]
    # The run after the reset is a fresh one (docs/design.md: `reset`, not `re-run`), as a
    # manager-side task's is (tests/integration/test_plan_equals_run.py): the owner said
    # so when it sent the task again (`tasks.resume`), whatever the attempt before was.
    assert found["blk"][1]["resume"] is False
