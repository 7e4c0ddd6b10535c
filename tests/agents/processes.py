"""Real `dalsegno manager` and `dalsegno agent` processes for the agent proofs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from conftest import WORKFLOWS, cli_env


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting {what}".rstrip()
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alive(process: subprocess.Popen[str]) -> bool:
    return process.poll() is None


class Cluster:
    """A manager (on a fixed port, so it can come back at the same address) and agents."""

    def __init__(self, home: Path, tmp_path: Path, lease_timeout: float = 2.0) -> None:
        self.home = home
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.lease_timeout = lease_timeout
        self.manager: subprocess.Popen[str] | None = None
        self.agents: dict[str, subprocess.Popen[str]] = {}
        self.processes: list[subprocess.Popen[str]] = []

    # the manager ---------------------------------------------------------------------

    def start_manager(self) -> subprocess.Popen[str]:
        with (self.tmp_path / "manager.log").open("a") as log:
            process = self._manager(log)
        self.processes.append(process)
        self.manager = process
        wait_for(self._answers, what="for the manager")
        return process

    def _manager(self, log: TextIO) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{self.port}",
             "--lease-timeout", str(self.lease_timeout), "--grace", "1"],
            cwd=WORKFLOWS,
            env=cli_env(self.home),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )  # fmt: skip

    def kill_manager(self) -> None:
        assert self.manager is not None
        self.manager.kill()
        self.manager.wait(10)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/executions", headers=self.headers).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    @property
    def token(self) -> str:
        path = self.home / "token"
        return path.read_text().strip() if path.exists() else ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    # agents --------------------------------------------------------------------------

    def start_agent(
        self, name: str, queue: str = "web", *extra: str, token: str | None = None
    ) -> subprocess.Popen[str]:
        with self.agent_log(name).open("a") as log:
            process = self._agent(name, queue, extra, token, log)
        self.processes.append(process)
        self.agents[name] = process
        return process

    def _agent(
        self, name: str, queue: str, extra: tuple[str, ...], token: str | None, log: TextIO
    ) -> subprocess.Popen[str]:
        agent_home = self.tmp_path / f"home-{name}"
        return subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "--manager", self.url, "agent", "--queue", queue,
             "--name", name, "--home", str(agent_home), "--heartbeat-interval", "0.3",
             "--token", token or self.token, *extra],
            cwd=WORKFLOWS,
            env=cli_env(self.home, DALSEGNO_TEST_AGENT=name),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )  # fmt: skip

    def agent_log(self, name: str) -> Path:
        return self.tmp_path / f"agent-{name}.log"

    def outbox(self, name: str, queue: str = "web") -> list[str]:
        import sqlite3

        path = self.tmp_path / f"home-{name}" / f"agent-{queue}-outbox.db"
        if not path.exists():
            return []
        with sqlite3.connect(path) as db:
            return [row[0] for row in db.execute("SELECT attempt_id FROM results")]

    # the API -------------------------------------------------------------------------

    def start(self, workflow: str, **params: Any) -> str:
        answer = httpx.post(
            f"{self.url}/executions",
            headers=self.headers,
            json={"workflow": workflow, "params": params},
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def get(self, execution_id: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/executions/{execution_id}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def status(self, execution_id: str) -> str:
        return str(self.get(execution_id)["status"])

    def task(self, execution_id: str, key: str) -> dict[str, Any]:
        (found,) = [task for task in self.get(execution_id)["tasks"] if task["key"] == key]
        return found

    def get_agents(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/agents", headers=self.headers)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.post(f"{self.url}{path}", headers=headers, json=body, timeout=40)

    def stop_all(self) -> None:
        for process in self.processes:
            if alive(process):
                process.kill()
            process.wait(10)


def runs(log: Path) -> dict[str, list[dict[str, Any]]]:
    """The runs of each task key, in order, as the operations recorded them."""
    found: dict[str, list[dict[str, Any]]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            found.setdefault(entry["key"], []).append(entry)
    return found
