"""The agent torture: 500 agent tasks of four kinds (short and 1-2 s long, resumable and
not) served by 3 real `dalsegno agent` processes, while agents and the manager are killed
with SIGKILL at random moments (and restarted), at least 15 kills in all.

Everything is judged from the operations' own log (tests/workflows/agent_torture.py: a
line when a body starts, one when it ends) and from the store: the execution completes,
or fails only with the documented lost-agent message of non-resumable tasks; no
non-resumable operation started twice; a resumable one started again only if its agent
or the manager was killed while it ran; no result applied twice; no task left in flight.
The figures are printed (pytest -s) and kept in docs/reliability.md.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

from agents.processes import Cluster, wait_for
from conftest import WORKFLOWS, cli_env
from dalsegno.store import open_store

pytestmark = [pytest.mark.crash, pytest.mark.timeout(420)]

TASKS = 500
AGENTS = ("t0", "t1", "t2")
KILLS = 15
AGENT_TIMEOUT = 5.0  # seconds; a loaded CI machine must not make a healthy agent look lost
LOST = "operation interrupted on agent {agent} and not resumable: {key} ({ref})"
WORKLOAD = WORKFLOWS / "agent_torture.py"


class TortureCluster(Cluster):
    """The manager with the agent timeout of the torture."""

    def _manager(self, log: TextIO) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{self.port}",
             "--lease-timeout", str(self.lease_timeout), "--agent-timeout", str(AGENT_TIMEOUT),
             "--grace", "1"],
            cwd=WORKFLOWS,
            env=cli_env(self.home),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )  # fmt: skip

    def start_torture_agent(self, name: str) -> None:
        self.start_agent(
            name, "torture", "--concurrency", "4", "--heartbeat-interval", str(AGENT_TIMEOUT / 4)
        )


@pytest.fixture
def cluster(home: Path, tmp_path: Path) -> Iterator[TortureCluster]:
    running = TortureCluster(home, tmp_path, lease_timeout=3.0)
    yield running
    running.stop_all()


def entries(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_agents_and_the_manager_killed_at_random_lose_nothing_and_run_nothing_twice(
    cluster: TortureCluster, tmp_path: Path, store_url: str
) -> None:
    seed = int(os.environ.get("DALSEGNO_TORTURE_SEED", str(time.time_ns() % 1_000_000)))
    chance = random.Random(seed)
    log = tmp_path / "operations.log"
    cluster.start_manager()
    for name in AGENTS:
        cluster.start_torture_agent(name)
    execution_id = cluster.start("agent_torture:torture", log=str(log), tasks=TASKS)
    kills: list[dict[str, Any]] = []
    began = time.monotonic()
    while len(kills) < KILLS:
        assert time.monotonic() - began < 240, f"only {len(kills)} kills (seed {seed})"
        time.sleep(chance.uniform(0.3, 1.5))
        victim = chance.choice([*AGENTS, "manager"])
        if victim == "manager":
            pid = cluster.manager.pid if cluster.manager else 0
            kills.append({"what": "manager", "pid": pid, "at": time.time()})
            cluster.kill_manager()
            cluster.start_manager()
        else:
            process = cluster.agents[victim]
            kills.append({"what": victim, "pid": process.pid, "at": time.time()})
            process.kill()
            process.wait(10)
            cluster.start_torture_agent(victim)
    # no more kills: the execution ends by itself, nothing left in flight
    wait_for(
        lambda: cluster.status(execution_id) in ("completed", "failed"),
        timeout=150,
        what=f"for the execution to end (seed {seed})",
    )
    figures = judge(store_url, execution_id, entries(log), kills)
    figures["seed"] = seed
    print("agent torture:", json.dumps(figures))


def judge(
    store_url: str, execution_id: str, log: list[dict[str, Any]], kills: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every assertion of the torture; returns its figures."""
    store = open_store(store_url)
    try:
        execution = store.get_execution(execution_id)
        tasks = {task.key: task for task in store.list_tasks(execution_id)}
        attempts = store.list_attempts(execution_id)
        events = store.list_events(execution_id)
    finally:
        store.close()
    assert execution is not None
    assert len(tasks) == TASKS
    starts: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        if entry["event"] == "start":
            starts.setdefault(entry["key"], []).append(entry)
    killed_agents = {kill["pid"]: kill["at"] for kill in kills if kill["what"] != "manager"}
    manager_kills = [kill["at"] for kill in kills if kill["what"] == "manager"]

    # no non-resumable operation started twice
    once = {key: runs for key, runs in starts.items() if "_once-" in key}
    assert [key for key, runs in once.items() if len(runs) > 1] == []

    # a resumable one started again only if its agent or the manager was killed meanwhile
    reruns = 0
    for key, runs in starts.items():
        for first, then in itertools.pairwise(runs):
            reruns += 1
            agent_killed = first["at"] <= killed_agents.get(first["pid"], -1.0) <= then["at"]
            manager_killed = any(first["at"] <= at <= then["at"] for at in manager_kills)
            assert "_resumable-" in key
            assert agent_killed or manager_killed, f"{key} ran again with no kill: {runs}"
            assert then["resume"], f"{key} ran again without ctx.resume: {then}"

    # no result applied twice: one success per task, in its attempts and in its events
    succeeded: dict[int, int] = {}
    for attempt in attempts:
        if attempt.outcome == "succeeded":
            succeeded[attempt.task_id] = succeeded.get(attempt.task_id, 0) + 1
    assert [task_id for task_id, count in succeeded.items() if count > 1] == []
    applied: dict[str, int] = {}
    for event in events:
        if event.type == "task_succeeded" and event.task_key is not None:
            applied[event.task_key] = applied.get(event.task_key, 0) + 1
    assert [key for key, count in applied.items() if count > 1] == []

    # what became of each task: succeeded having run, or failed as a lost non-resumable
    # one, or never run because a dependency failed; nothing left in flight
    failed = [task for task in tasks.values() if task.status.value == "failed"]
    for task in failed:
        assert "_once-" in task.key, f"{task.key} failed: {task.error}"
        assert task.error is not None and task.error.startswith(
            "operation interrupted on agent "
        ), task.error
        assert task.error.endswith(f" and not resumable: {task.key} ({task.operation})")
    for task in tasks.values():
        assert task.status.value in ("succeeded", "failed", "pending"), (task.key, task.status)
        if task.status.value == "succeeded":
            assert task.key in starts, f"{task.key} succeeded but never ran"
            assert applied.get(task.key) == 1
    if execution.status.value == "completed":
        assert failed == []
    else:
        assert execution.status.value == "failed"
        assert execution.error is not None
        assert all(f"'{task.key}'" in execution.error for task in failed)
    blocked = [task for task in tasks.values() if task.status.value == "pending"]
    assert not blocked or failed  # pending only behind a failed dependency
    return {
        "backend": store_url.split(":", 1)[0],
        "status": execution.status.value,
        "tasks": TASKS,
        "kills": len(kills),
        "agent_kills": len(killed_agents),
        "manager_kills": len(manager_kills),
        "resumable_reruns": reruns,
        "non_resumable_started_twice": 0,
        "results_applied_twice": 0,
        "failed_lost_non_resumable": len(failed),
        "blocked_behind_them": len(blocked),
        "stuck": 0,
    }
