"""Several `dalsegno manager` processes on one PostgreSQL database: executions spread across
them, kill -9 of two of them at different moments, and fencing of one paused past its lease.

Each manager runs as a host of its own (a UTS namespace with its own host name, where the
machine allows it), so a dead one is found by its lease running out, as across machines,
not by its pid. The operations' own run logs show what ran twice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest

from acceptance.test_manager_process import Managers, free_port, get, start, wait_for
from conftest import WORKFLOWS, cli_env

pytestmark = [pytest.mark.crash, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]

LEASE = 2.0  # seconds: DALSEGNO_LEASE_TIMEOUT of every manager here
WIDTH = 30


@cache
def distinct_hosts() -> bool:
    """Whether a process can get a host name of its own here (root, UTS namespaces)."""
    try:
        probe = subprocess.run(
            ["unshare", "--uts", "true"], check=False, capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class HostManagers(Managers):
    """Managers that each run as a host of its own."""

    def start_as(self, host: str, *extra: str, **env: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        command = [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{port}"]
        if distinct_hosts():  # exec keeps the pid: the test kills the manager itself
            command = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *command]
        with (self.home / f"{host}.log").open("w") as logged:  # read when a test fails
            process = subprocess.Popen(
                [*command, *extra],
                cwd=WORKFLOWS,
                env=cli_env(
                    self.home, DALSEGNO_LEASE_TIMEOUT=str(LEASE), DALSEGNO_CONCURRENCY="2", **env
                ),
                stdout=subprocess.DEVNULL,
                stderr=logged,
                text=True,
            )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}/api/v1"
        wait_for(lambda: self._answers(url))
        return process, url


@pytest.fixture
def managers(home: Path) -> Iterator[HostManagers]:
    running = HostManagers(home)
    yield running
    running.stop_all()


@pytest.fixture
def database(store_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The test's database, read from outside the managers."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        yield conn


def holders(database: psycopg.Connection[Any], ids: list[str]) -> dict[str, int | None]:
    """The pid holding each execution's lease (None: no lease)."""
    rows = database.execute(
        "SELECT id, lease_pid FROM executions WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def token(database: psycopg.Connection[Any], execution_id: str) -> int:
    row = database.execute(
        "SELECT lease_token FROM executions WHERE id = %s", (execution_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def body_runs(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def runs_of(log: Path) -> dict[tuple[str, str], list[bool]]:
    found: dict[tuple[str, str], list[bool]] = {}
    for entry in body_runs(log):
        found.setdefault((entry["execution"], entry["key"]), []).append(entry["resume"])
    return found


def kill_and_time_takeover(
    process: subprocess.Popen[str], database: psycopg.Connection[Any], ids: list[str]
) -> float:
    """kill -9 `process`; seconds until every execution it held had a new owner."""
    held = [i for i, pid in holders(database, ids).items() if pid == process.pid]
    assert held, "the manager to kill runs no execution"
    process.kill()
    killed = time.monotonic()
    process.wait(10)
    wait_for(
        lambda: all(holders(database, held)[i] not in (process.pid,) for i in held),
        timeout=LEASE + 10,
    )
    took = time.monotonic() - killed
    print(f"takeover of {len(held)} executions after kill -9: {took:.2f} s")
    return took


def test_three_managers_share_the_work_and_two_killed_ones_are_taken_over(
    managers: HostManagers, database: psycopg.Connection[Any], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    params = {"log": str(log), "width": WIDTH, "pause": 0.4}  # 2 at once: 6 s each
    # Started in turn, each with room for two executions, so each one runs two of them;
    # the last has room for all six once the others are gone.
    first, url = managers.start_as("manager-one", "--max-executions", "2")
    ids = [start(managers, url, "spread:wide", **params) for _ in range(2)]
    wait_for(lambda: set(holders(database, ids).values()) == {first.pid})
    second, _ = managers.start_as("manager-two", "--max-executions", "2")
    ids += [start(managers, url, "spread:wide", **params) for _ in range(2)]
    wait_for(lambda: list(holders(database, ids).values()).count(second.pid) == 2)
    third, url = managers.start_as("manager-three", "--max-executions", "6")
    ids += [start(managers, url, "spread:wide", **params) for _ in range(2)]
    wait_for(lambda: list(holders(database, ids).values()).count(third.pid) == 2)

    def worked(execution_id: str) -> int:
        return sum(1 for entry in body_runs(log) if entry["execution"] == execution_id)

    wait_for(lambda: all(worked(i) >= 4 for i in ids[:2]))  # in the middle of the graphs
    took_first = kill_and_time_takeover(first, database, ids)
    wait_for(lambda: all(worked(i) >= 8 for i in ids[2:4]))  # a later moment
    took_second = kill_and_time_takeover(second, database, ids)
    wait_for(lambda: all(get(managers, url, i)["status"] == "completed" for i in ids), timeout=90)

    assert took_first <= LEASE + 1.0, took_first
    assert took_second <= LEASE + 1.0, took_second
    runs = runs_of(log)
    for execution_id in ids:
        assert runs[(execution_id, "setup")] == [False]  # not resumable: ran exactly once
        keys = {key for (execution, key) in runs if execution == execution_id}
        assert keys == {"setup"} | {f"w{i:03d}" for i in range(WIDTH)}
    resumed = [i for i in ids if any(any(r) for (e, _), r in runs.items() if e == i)]
    assert set(ids[:4]) <= set(resumed)  # the killed managers' executions were resumed
    pids = {entry["pid"] for entry in body_runs(log)}
    assert {first.pid, second.pid, third.pid} <= pids


def test_a_paused_manager_is_fenced_out_by_the_one_that_took_over(
    managers: HostManagers, database: psycopg.Connection[Any], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    paused, url = managers.start_as("manager-paused")
    execution_id = start(managers, url, "spread:wide", log=str(log), width=12, pause=0.5)
    wait_for(lambda: len(body_runs(log)) >= 3)
    paused.send_signal(signal.SIGSTOP)  # alive, its lease held: it must run out
    stopped_at, token_before = time.monotonic(), token(database, execution_id)
    other, other_url = managers.start_as("manager-other")
    wait_for(lambda: token(database, execution_id) > token_before, timeout=LEASE + 10)
    assert time.monotonic() - stopped_at <= LEASE + 1.0 + 2.0  # + the other one's start
    assert holders(database, [execution_id])[execution_id] == other.pid
    wait_for(lambda: get(managers, other_url, execution_id)["status"] == "completed", timeout=60)
    events_before = database.execute(
        "SELECT count(*) FROM events WHERE execution_id = %s", (execution_id,)
    ).fetchone()
    paused.send_signal(signal.SIGCONT)  # its operations return now: every write is refused
    time.sleep(2.0)
    after = get(managers, other_url, execution_id)
    assert after["status"] == "completed"
    assert {task["status"] for task in after["tasks"]} == {"succeeded"}
    events_after = database.execute(
        "SELECT count(*) FROM events WHERE execution_id = %s", (execution_id,)
    ).fetchone()
    assert events_after == events_before  # the paused one wrote nothing more
    assert token(database, execution_id) == token_before + 1
    runs = runs_of(log)
    assert runs[(execution_id, "setup")] == [False]
    paused_runs = [e for e in body_runs(log) if e["pid"] == paused.pid]
    assert paused_runs and all(not e["resume"] for e in paused_runs)
