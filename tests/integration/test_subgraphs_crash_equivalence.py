"""Crashes change nothing (docs/design.md, "Subgraphs and failure policies"): random
nested graphs with random failures, retries and policies, crashed at random points (a
task's start or end, a graph's storing, a subgraph's reset or retry wait, the execution's
end) any number of times and taken up again each time, end in the state a run without a
crash ends in: the execution, every task and every subgraph with its retry count. A task
whose success was stored never runs again (no attempt after it) unless a subgraph it is in
retried.

In process (`dalsegno.testing`'s crash hooks: the run stops at the point, writing nothing
more); each operation fails by its task's retry count, so an attempt that runs again after
a crash ends as the first one did.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dalsegno.engine.runner import EngineConfig
from dalsegno.model.errors import ConflictError
from dalsegno.model.states import EXECUTION_END_STATES
from dalsegno.service.executions import ExecutionService
from dalsegno.store import open_store

TREE = f"{Path(__file__).resolve().parents[1] / 'workflows' / 'subgraphs.py'}:tree"
CONFIG = EngineConfig(concurrency=3, lease_timeout=0.3, poll_interval=0.02)


@st.composite
def levels(draw: st.DrawFn, prefix: str, depth: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    for index in range(draw(st.integers(1, 3))):
        key = f"{prefix}{index}"
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            node: dict[str, Any] = {
                "key": key,
                "sub": draw(levels(f"{key}.", depth + 1)),
                "retries": draw(st.sampled_from((0, 1, 2))),
                "ignore": draw(st.integers(0, 4)) == 0,
            }
        else:
            node = {
                "key": key,
                "op": "by_attempt",
                "fail": draw(st.sampled_from((0, 0, 0, 1, 2))),
                "retries": draw(st.sampled_from((0, 1))),
                "ignore": draw(st.integers(0, 5)) == 0,
            }
        for dep in sorted(draw(st.sets(st.integers(0, index - 1), max_size=2)) if index else []):
            edges.append([key, f"{prefix}{dep}"])
        nodes.append(node)
    return {"nodes": nodes, "edges": edges}


def outcome(service: ExecutionService, execution_id: str) -> tuple[Any, ...]:
    """The execution's state, and the state (and retry count) of every task and subgraph
    but those inside a failed subgraph: how far these had got when it failed depends on
    timing, crash or not (a failing subgraph starts nothing more)."""
    execution, tasks = service.get(execution_id)
    graph = service.store.load_graphs(execution_id)["main"]
    subs = {sub.key: sub for sub in graph.subgraphs}

    def in_failed(key: str | None) -> bool:
        while key is not None:
            if subs[key].status == "failed":
                return True
            key = subs[key].parent
        return False

    return (
        execution.status.value,
        sorted(
            (task.key, task.status.value, task.retries)
            for task in tasks
            if not in_failed(task.subgraph)
        ),
        sorted(
            (sub.key, sub.status, sub.retries)
            for sub in graph.subgraphs
            if not in_failed(sub.parent)
        ),
    )


def crash_after(hits: int, crashed: list[tuple[str, str]]) -> Any:
    """A crash hook that crashes at the `hits`-th crash point it passes."""
    seen = [0]

    def hook(point: str, _graph: str, key: str) -> bool:
        seen[0] += 1
        if seen[0] == hits:
            crashed.append((point, key))
            return True
        return False

    return hook


@settings(
    max_examples=int(os.environ.get("DALSEGNO_CRASH_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=levels("t", 0), crashes=st.lists(st.integers(1, 12), min_size=1, max_size=3))
def test_any_crashes_end_as_a_run_without_crash(
    spec: dict[str, Any], crashes: list[int], tmp_path: Path
) -> None:
    folder = tmp_path / f"case-{time.monotonic_ns()}"
    folder.mkdir()
    clean_store = open_store(f"sqlite:///{folder / 'clean.db'}")
    crashy_store = open_store(f"sqlite:///{folder / 'crashy.db'}")
    try:
        clean = ExecutionService(clean_store, CONFIG)
        params = {"log": str(folder / "clean.log"), "spec": spec}
        expected = outcome(clean, clean.start(TREE, params).execution_id)

        crashy = ExecutionService(crashy_store, CONFIG)
        log = folder / "crashy.log"
        crashed: list[tuple[str, str]] = []
        run = crashy.start(
            TREE, {"log": str(log), "spec": spec}, crash_hook=crash_after(crashes[0], crashed)
        )
        execution_id = run.execution_id
        for hits in [*crashes[1:], 0]:
            record = crashy.find(execution_id)
            if record.status in EXECUTION_END_STATES:
                break
            hook = crash_after(hits, crashed) if hits else None
            for _ in range(50):  # the crashed run's lease expires (a renewal may be late)
                time.sleep(max(0.0, (record.lease_expires_at or 0.0) - time.time()) + 0.02)
                try:
                    crashy.resume(execution_id, crash_hook=hook)
                    break
                except ConflictError:
                    record = crashy.find(execution_id)
        time.sleep(0.1)  # what a crashed run left running in a thread ends

        assert outcome(crashy, execution_id) == expected, (crashed, spec)
        retried = {
            task.key
            for task in crashy.store.list_tasks(execution_id)
            if task.subgraph is not None and _in_retried(crashy, execution_id, task.subgraph)
        }
        attempts: dict[int, list[str]] = {}
        for attempt in crashy.store.list_attempts(execution_id):
            attempts.setdefault(attempt.task_id, []).append(attempt.outcome)
        for task in crashy.store.list_tasks(execution_id):
            if task.key in retried:
                continue
            outcomes = attempts.get(task.id, [])
            if "succeeded" in outcomes:  # a stored success is the task's last attempt
                assert outcomes.index("succeeded") == len(outcomes) - 1, (task.key, outcomes)
    finally:
        clean_store.close()
        crashy_store.close()


def _in_retried(service: ExecutionService, execution_id: str, key: str | None) -> bool:
    subs = {sub.key: sub for sub in service.store.load_graphs(execution_id)["main"].subgraphs}
    while key is not None:
        if subs[key].retries:
            return True
        key = subs[key].parent
    return False
