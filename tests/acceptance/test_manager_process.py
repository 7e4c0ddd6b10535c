"""`dalsegno manager` as a real process: kill -9 and restart, SIGSTOP past the lease,
graceful SIGTERM hand-over, kill-cancel through REST. The proof that executions survive
their manager, with the operations' own run logs showing nothing ran twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import WORKFLOWS, cli_env

pytestmark = pytest.mark.crash


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Managers:
    """Starts `python -m dalsegno manager` processes on one home; stops them all at the end."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, *extra: str, **env: str) -> tuple[subprocess.Popen[str], str]:
        return self.start_on(free_port(), *extra, **env)

    def start_on(self, port: int, *extra: str, **env: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{port}", *extra],
            cwd=WORKFLOWS,
            env=cli_env(self.home, **env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}/api/v1"
        wait_for(lambda: self._answers(url))
        return process, url

    def _answers(self, url: str) -> bool:
        try:
            return httpx.get(f"{url}/executions", headers=self.headers).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    @property
    def headers(self) -> dict[str, str]:
        token_file = self.home / "token"
        token = token_file.read_text().strip() if token_file.exists() else ""
        return {"Authorization": f"Bearer {token}"}

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(10)


@pytest.fixture
def managers(home: Path) -> Iterator[Managers]:
    running = Managers(home)
    yield running
    running.stop_all()


def runs(log: Path) -> dict[str, list[bool]]:
    found: dict[str, list[bool]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            found.setdefault(entry["key"], []).append(entry["resume"])
    return found


def start(managers: Managers, url: str, workflow: str, **params: Any) -> str:
    answer = httpx.post(
        f"{url}/executions",
        headers=managers.headers,
        json={"workflow": workflow, "params": params},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def get(managers: Managers, url: str, execution_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/executions/{execution_id}", headers=managers.headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    return log, marker, hold


def test_kill_9_and_restart_completes_without_running_anything_twice(
    managers: Managers, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    first, url = managers.start()
    execution_id = start(
        managers, url, "crashy:blocking", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists)
    first.kill()  # kill -9 in the middle of the execution
    first.wait(10)
    hold.unlink()
    _, url = managers.start()  # a restart on the same host: the dead owner's lease is void
    wait_for(lambda: get(managers, url, execution_id)["status"] == "completed")
    assert runs(log) == {"a": [False], "blk": [False, True], "c": [False]}


def test_a_non_resumable_workflow_becomes_failed_with_the_reason(
    managers: Managers, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    first, url = managers.start()
    execution_id = start(
        managers, url, "crashy:oneshot", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists)
    first.kill()
    first.wait(10)
    hold.unlink()
    _, url = managers.start()
    wait_for(lambda: get(managers, url, execution_id)["status"] == "failed")
    assert get(managers, url, execution_id)["error"] == (
        "Cannot resume - workflow not resumable: crashy:oneshot"
    )
    assert runs(log) == {"a": [False], "blk": [False]}


def test_a_paused_manager_loses_its_lease_and_its_writes_are_refused(
    managers: Managers, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    paused, url = managers.start(DALSEGNO_LEASE_TIMEOUT="1")
    execution_id = start(
        managers, url, "crashy:blocking", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists)
    paused.send_signal(signal.SIGSTOP)  # alive, so its lease is not void: it must expire
    token_before = get_token(managers.home, execution_id)
    _, other = managers.start(DALSEGNO_LEASE_TIMEOUT="1")
    wait_for(lambda: get_token(managers.home, execution_id) > token_before)
    wait_for(lambda: len(runs(log).get("blk", [])) == 2)  # the new owner re-runs blk
    hold.unlink()
    wait_for(lambda: get(managers, other, execution_id)["status"] == "completed")
    paused.send_signal(signal.SIGCONT)  # its blk returns now; its writes must be refused
    time.sleep(2.0)
    assert get(managers, other, execution_id)["status"] == "completed"
    assert runs(log) == {"a": [False], "blk": [False, True], "c": [False]}
    statuses = [task["status"] for task in get(managers, other, execution_id)["tasks"]]
    assert statuses == ["succeeded", "succeeded", "succeeded"]


def get_token(home: Path, execution_id: str) -> int:
    import sqlite3

    with sqlite3.connect(home / "dalsegno.db") as db:
        row = db.execute(
            "SELECT lease_token FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
    return int(row[0])


def test_sigterm_hands_executions_over_without_waiting_for_the_lease(
    managers: Managers, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    first, url = managers.start("--grace", "10", DALSEGNO_LEASE_TIMEOUT="600")
    execution_id = start(
        managers, url, "crashy:blocking", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists)
    first.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    hold.unlink()  # the running operation ends within the grace period
    first.wait(20)
    assert first.returncode == 0
    began = time.monotonic()
    _, url = managers.start(DALSEGNO_LEASE_TIMEOUT="600")
    wait_for(lambda: get(managers, url, execution_id)["status"] == "completed")
    assert time.monotonic() - began < 10  # not the 600 s lease
    assert runs(log) == {"a": [False], "blk": [False], "c": [False]}


def test_kill_cancel_through_rest_stops_a_process_operation(
    managers: Managers, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    _, url = managers.start()
    execution_id = start(
        managers, url, "procs:single", op="sleepy", pidfile=str(pidfile), seconds=120
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    pid = int(pidfile.read_text())
    asked = time.monotonic()
    answer = httpx.post(
        f"{url}/executions/{execution_id}/cancel", headers=managers.headers, json={"mode": "kill"}
    )
    assert answer.status_code == 202, answer.text
    wait_for(lambda: get(managers, url, execution_id)["status"] == "cancelled", timeout=10)
    assert time.monotonic() - asked < 10

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10)
    (task,) = get(managers, url, execution_id)["tasks"]
    assert task["status"] == "failed"
    assert task["error"] == "killed by cancel"


def test_run_through_a_manager_follows_it_across_a_restart(
    managers: Managers, home: Path, tmp_path: Path
) -> None:
    from conftest import start_cli

    log, marker, hold = files(tmp_path)
    first, url = managers.start()
    port = url.split(":")[2].split("/")[0]
    follower = start_cli(
        home, "--manager", url, "run", "crashy:blocking", "-p", f"log={log}",
        "-p", f"marker={marker}", "-p", f"hold={hold}",
    )  # fmt: skip
    wait_for(marker.exists)
    first.kill()
    first.wait(10)
    hold.unlink()
    managers.start_on(int(port))  # the same address comes back
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert "still trying" in err
    assert "'blocking' workflow execution succeeded" in out
    assert runs(log) == {"a": [False], "blk": [False, True], "c": [False]}
