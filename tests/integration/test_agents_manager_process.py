"""A real `dalsegno manager` process and a minimal HTTP agent written here (httpx): claim,
`started`, run the operation's body, deliver the result. Then the same with the manager
killed (SIGKILL) while the agent holds a started task: the result is delivered to the
restarted manager, the execution completes, and the operation's body ran once.
(The real `dalsegno agent` process is tested in tests/agents/.)
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from conftest import WORKFLOWS, cli_env, run_cli

FLOWS = WORKFLOWS / "agent_server_flows.py"


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Manager:
    """`python -m dalsegno manager` on one port; restartable on the same one."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{self.port}"],
            cwd=WORKFLOWS,
            env=cli_env(self.home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        wait_for(self._answers)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/executions", headers=self.admin).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def admin(self) -> dict[str, str]:
        token = self.home / "token"
        return {"Authorization": f"Bearer {token.read_text().strip() if token.exists() else ''}"}

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def status(self, execution_id: str) -> str:
        answer = httpx.get(f"{self.url}/executions/{execution_id}", headers=self.admin)
        return str(answer.json()["status"])


@pytest.fixture
def manager(home: Path) -> Iterator[Manager]:
    running = Manager(home)
    running.start()
    yield running
    running.stop()


class TestAgent:
    """The smallest agent: the protocol's calls, one at a time, with a queue token."""

    __test__ = False

    def __init__(self, url: str, token: str, name: str = "test-agent") -> None:
        self.url = url
        self.name = name
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=40)

    def claim(self, queue: str = "web") -> dict[str, Any]:
        answer = self.post("/agents/claim", {"queue": queue, "agent": self.name, "wait": 20})
        assert answer.status_code == 200, answer.text
        (assignment,) = answer.json()["tasks"]
        return dict(assignment)

    def started(self, attempt_id: str) -> None:
        answer = self.post(f"/agents/attempts/{attempt_id}/started", {"agent": self.name})
        assert answer.json() == {"attempt_id": attempt_id, "status": "started"}

    def heartbeat(self, attempts: list[str]) -> dict[str, Any]:
        body = {
            "queue": "web",
            "agent": self.name,
            "host": socket.gethostname(),
            "pid": 1,
            "concurrency": 1,
            "attempts": attempts,
        }
        answer = self.post("/agents/heartbeat", body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def result(self, attempt_id: str, value: Any) -> httpx.Response:
        body = {"agent": self.name, "outcome": "succeeded", "result": value}
        return self.post(f"/agents/attempts/{attempt_id}/result", body)


def run_body(assignment: dict[str, Any]) -> Any:
    """What an agent does with an assignment: import the operation, call its body."""
    path, _, name = assignment["operation"].rpartition(":")
    spec = importlib.util.spec_from_file_location("agent_server_flows_here", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ctx = SimpleNamespace(task_key=assignment["task_key"], resume=assignment["resume"])
    return getattr(module, name)(ctx, **assignment["kwargs"])


def agent_token(home: Path) -> str:
    made = run_cli(home, "agents", "token", "web")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def start(manager: Manager, **params: Any) -> str:
    answer = httpx.post(
        f"{manager.url}/executions",
        headers=manager.admin,
        json={"workflow": f"{FLOWS}:remote", "params": params},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_an_http_agent_runs_a_task_of_a_real_manager(
    home: Path, manager: Manager, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    agent = TestAgent(manager.url, agent_token(home))
    execution_id = start(manager, path=str(runs))
    assignment = agent.claim()
    agent.started(assignment["attempt_id"])
    assert agent.heartbeat([assignment["attempt_id"]])["kill"] == []
    listed = run_cli(home, "--manager", manager.url.removesuffix("/api/v1"), "agents", "list")
    assert listed.returncode == 0, listed.stderr
    assert "test-agent" in listed.stdout and "web" in listed.stdout
    value = run_body(assignment)
    assert agent.result(assignment["attempt_id"], value).status_code == 200
    wait_for(lambda: manager.status(execution_id) == "completed")
    assert runs.read_text().splitlines() == ["t"]


def test_a_result_delivered_after_the_manager_was_killed_completes_the_execution(
    home: Path, manager: Manager, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    agent = TestAgent(manager.url, agent_token(home))
    execution_id = start(manager, path=str(runs))
    assignment = agent.claim()
    agent.started(assignment["attempt_id"])
    manager.kill()  # kill -9 while the agent holds a started task
    value = run_body(assignment)
    with pytest.raises(httpx.ConnectError):  # the agent keeps its result until it gets through
        agent.result(assignment["attempt_id"], value)
    manager.start()
    answer = agent.result(assignment["attempt_id"], value)
    assert answer.status_code == 200, answer.text
    assert agent.result(assignment["attempt_id"], value).status_code == 200  # again: harmless
    wait_for(lambda: manager.status(execution_id) == "completed")
    assert runs.read_text().splitlines() == ["t"]  # the body ran once
    listed = httpx.get(f"{manager.url}/executions/{execution_id}", headers=manager.admin).json()
    assert [(t["key"], t["status"]) for t in listed["tasks"]] == [
        ("local", "succeeded"),
        ("t", "succeeded"),
        ("after", "succeeded"),
    ]


def test_sigterm_answers_waiting_claims_at_once_and_the_manager_exits(
    home: Path, manager: Manager
) -> None:
    # Agents long-poll for up to 30 s; a manager told to stop must not wait for them
    # before it hands its executions over.
    from concurrent.futures import ThreadPoolExecutor

    agent = TestAgent(manager.url, agent_token(home))
    body = {"queue": "web", "agent": agent.name, "wait": 30}
    with ThreadPoolExecutor(3) as pool:
        claims = [pool.submit(agent.post, "/agents/claim", body) for _ in range(3)]
        time.sleep(1.0)  # the claims are waiting now
        assert not any(claim.done() for claim in claims)
        assert manager.process is not None
        began = time.monotonic()
        manager.process.send_signal(signal.SIGTERM)
        answers = [claim.result(timeout=10) for claim in claims]
        assert [answer.json() for answer in answers] == [{"tasks": []}] * 3
        assert manager.process.wait(10) == 0
    assert time.monotonic() - began < 5.0
