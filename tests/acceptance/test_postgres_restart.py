"""A PostgreSQL restart (`pg_ctlcluster ... restart`) in the middle of executions of
`dalsegno manager` processes, and of operations running on a `dalsegno agent`: they
reconnect and carry on; nothing is lost, nothing runs twice, nothing is left pending or
started.

The restart cuts the connections of every test using the server: these tests are marked
`db_restart`, which conftest.py collects last, and the server is started again if it is
not back when a test ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from acceptance.test_manager_process import Managers, start, wait_for
from conftest import WORKFLOWS, PostgresServer, cli_env

pytestmark = [
    pytest.mark.crash,
    pytest.mark.db_restart,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


def cluster_of(port: int) -> tuple[str, str]:
    """The version and name of the cluster on `port` (`pg_lsclusters`)."""
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    )
    for line in listed.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if int(cluster_port) == port:
            return version, name
    pytest.fail(f"no PostgreSQL cluster of this machine listens on port {port}")


def pg_ctlcluster(postgres: PostgresServer, action: str) -> None:
    version, name = cluster_of(postgres.url.port or 5432)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def server_is_up(postgres: PostgresServer) -> bool:
    probe = subprocess.run(
        ["pg_isready", "-q", "-h", postgres.url.host or "127.0.0.1", "-p", str(postgres.url.port)],
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture
def restartable(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The test server, up again (and its admin connection new) after the test."""
    yield postgres
    if not server_is_up(postgres):
        pg_ctlcluster(postgres, "start")
        wait_for(lambda: server_is_up(postgres), timeout=60)
    postgres.reconnect()


@pytest.fixture
def managers(home: Path) -> Iterator[Managers]:
    running = Managers(home)
    yield running
    running.stop_all()


def statuses(managers: Managers, url: str, ids: list[str]) -> dict[str, str] | None:
    """Each execution's state, or None while the manager cannot answer (the outage)."""
    found = {}
    try:
        for execution_id in ids:
            answer = httpx.get(f"{url}/executions/{execution_id}", headers=managers.headers)
            if answer.status_code != 200:
                return None
            found[execution_id] = str(answer.json()["status"])
    except httpx.HTTPError:
        return None
    return found


def errors(managers: Managers, url: str, ids: list[str]) -> dict[str, str | None]:
    """Each execution's error, with its failed tasks' errors (what a failure reads as)."""
    found: dict[str, str | None] = {}
    for execution_id in ids:
        answer = httpx.get(f"{url}/executions/{execution_id}", headers=managers.headers).json()
        failed = [f"{t['key']}: {t['error']}" for t in answer["tasks"] if t["status"] == "failed"]
        found[execution_id] = "; ".join([answer["error"], *failed]) if answer["error"] else None
    return found


def body_runs(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_server_restart_mid_execution_loses_nothing_and_runs_nothing_twice(
    restartable: PostgresServer, managers: Managers, store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    env = {"DALSEGNO_LEASE_TIMEOUT": "10", "DALSEGNO_CONCURRENCY": "3"}
    _, url = managers.start("--max-executions", "2", **env)
    _, other = managers.start("--max-executions", "2", **env)
    # Not resumable at all: one operation run twice, or interrupted and resumed, fails it.
    params = {"log": str(log), "width": 18, "pause": 0.3, "resumable": False}
    ids = [start(managers, url, "spread:wide", **params) for _ in range(6)]  # 2 wait pending
    wait_for(lambda: len(body_runs(log)) >= 8)

    restarted_at = time.monotonic()
    pg_ctlcluster(restartable, "restart")
    assert time.monotonic() - restarted_at < 10  # an outage shorter than the lease
    restartable.reconnect()

    def ended() -> bool:
        seen = statuses(managers, other, ids)
        return seen is not None and all(
            s in ("completed", "failed", "cancelled") for s in seen.values()
        )

    wait_for(ended, timeout=120)
    assert errors(managers, other, ids) == {i: None for i in ids}
    assert statuses(managers, other, ids) == {i: "completed" for i in ids}
    runs: dict[tuple[str, str], int] = {}
    for entry in body_runs(log):
        assert entry["resume"] is False
        runs[(entry["execution"], entry["key"])] = (
            runs.get((entry["execution"], entry["key"]), 0) + 1
        )
    expected = {(i, key) for i in ids for key in ["setup", *(f"w{n:03d}" for n in range(18))]}
    assert set(runs) == expected
    assert {key: count for key, count in runs.items() if count != 1} == {}
    with psycopg.connect(store_url, autocommit=True) as database:
        tokens = database.execute(
            "SELECT id, lease_token FROM executions WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    assert dict(tokens) == {i: 1 for i in ids}  # claimed once: the outage was ridden out


def test_a_server_restart_mid_agent_operations_loses_nothing_and_runs_nothing_twice(
    restartable: PostgresServer, managers: Managers, store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    _, url = managers.start(DALSEGNO_LEASE_TIMEOUT="10")
    agent = subprocess.Popen(
        [
            *(sys.executable, "-m", "dalsegno", "agent", "--queue", "web", "--concurrency", "3"),
            *("--manager", url, "--token-file", str(managers.home / "token")),
        ],
        cwd=WORKFLOWS,
        env=cli_env(managers.home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    managers.processes.append(agent)
    params = {"log": str(log), "width": 9, "pause": 0.4}
    ids = [start(managers, url, "spread:remote", **params) for _ in range(2)]
    wait_for(lambda: sum(1 for e in body_runs(log) if e["key"].startswith("r")) >= 3)

    pg_ctlcluster(restartable, "restart")
    restartable.reconnect()

    def ended() -> bool:
        seen = statuses(managers, url, ids)
        return seen is not None and all(
            s in ("completed", "failed", "cancelled") for s in seen.values()
        )

    wait_for(ended, timeout=120)
    assert errors(managers, url, ids) == {i: None for i in ids}
    assert statuses(managers, url, ids) == {i: "completed" for i in ids}
    runs = [(entry["execution"], entry["key"]) for entry in body_runs(log)]
    expected = {(i, key) for i in ids for key in ["setup", *(f"r{n:03d}" for n in range(9))]}
    assert set(runs) == expected
    assert len(runs) == len(expected)  # every operation, here or on the agent, ran once
    assert all(entry["resume"] is False for entry in body_runs(log))
