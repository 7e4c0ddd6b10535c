"""`dalsegno manager` as a service: it binds before its worker starts, says where its UI
and sign-in token are, logs claims and ends (as JSON when asked), an access log, and the
`/healthz`, `/readyz` and `/metrics` endpoints, on a real process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import WORKFLOWS, cli_env, run_cli
from dalsegno.service.executions import ExecutionService

BEHAVIOUR = WORKFLOWS / "behaviour.py"


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running:
    """A manager process whose stderr is kept in a file."""

    def __init__(self, home: Path, *extra: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / f"manager-{self.port}.log"
        self.handle = self.log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dalsegno",
                "manager",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--grace",
                "1",
                *extra,
            ],
            cwd=WORKFLOWS,
            env=cli_env(home, **env),
            stdout=subprocess.DEVNULL,
            stderr=self.handle,
            text=True,
        )
        wait_for(self._answers, 20.0, "the manager to listen")
        self.token = (home / "token").read_text().strip()

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.token}"}
        )

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
        self.handle.close()
        return self.log.read_text()


@pytest.fixture
def manager(home: Path) -> Iterator[Running]:
    running = Running(home, "--log-format", "json", "--access-log")
    yield running
    running.stop()


def run_one(manager: Running, name: str, **params: object) -> str:
    with manager.api() as api:
        answer = api.post("/executions", json={"workflow": f"{BEHAVIOUR}:{name}", "params": params})
        assert answer.status_code == 201, answer.text
        execution_id = str(answer.json()["id"])
        wait_for(
            lambda: api.get(f"/executions/{execution_id}").json()["status"] == "completed",
            30.0,
            "the execution to complete",
        )
    return execution_id


def test_a_port_in_use_is_one_line_and_exit_2_and_no_execution_is_taken(
    home: Path, service: ExecutionService
) -> None:
    pending = service.create(f"{BEHAVIOUR}:deploy", {"hosts": 1})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(home, "manager", "--bind", f"127.0.0.1:{port}", timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    after = service.find(pending.id)
    assert after.status.value == "pending"
    assert after.lease_owner is None and after.lease_token == pending.lease_token


def test_the_log_says_where_the_ui_and_token_are_and_each_claim_and_end_as_json(
    home: Path, manager: Running
) -> None:
    execution_id = run_one(manager, "deploy", hosts=2)
    httpx.get(f"{manager.url}/healthz")
    lines = [json.loads(line) for line in manager.stop().splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    messages = [line["message"] for line in lines]
    assert any(f"web UI {manager.url}/" in m for m in messages), messages
    assert f"sign in to the web UI with the admin token in {home / 'token'}" in messages
    claimed = [line for line in lines if line["message"].startswith("claimed execution")]
    assert [line["execution_id"] for line in claimed] == [execution_id]
    ended = [line for line in lines if line["message"].startswith(f"execution {execution_id}")]
    assert [(line["message"], line["status"]) for line in ended] == [
        (f"execution {execution_id} ended completed", "completed")
    ]
    access = [line for line in lines if line["logger"] == "dalsegno.access"]
    assert {"message": "GET /healthz", "status": 200} in [
        {"message": line["message"], "status": line["status"]} for line in access
    ]
    assert all("duration_ms" in line and "client" in line for line in access)
    assert not any(manager.token in json.dumps(line) for line in lines), "a token was logged"
    assert messages[-2:] == ["stopping: handing executions over", "stopped"]


def test_a_takeover_is_logged_as_info_and_counted_in_the_metrics(home: Path) -> None:
    # a CLI run SIGKILLs itself once every task succeeded, before the end is written: the
    # execution stays `started` under the lease of a dead process of this host
    crashed = run_cli(
        home, "run", f"{BEHAVIOUR}:deploy", "-p", "hosts=2", DALSEGNO_CRASH_AT="before_finish"
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    running = Running(home, "--log-format", "json")
    try:
        with running.api() as api:
            [execution] = api.get("/executions").json()
            wait_for(
                lambda: api.get(f"/executions/{execution['id']}").json()["status"] == "completed",
                30.0,
                "the takeover to complete the execution",
            )
        metrics = httpx.get(f"{running.url}/metrics").text
    finally:
        log = running.stop()
    assert "\ndalsegno_takeovers_total 1.0\n" in metrics
    lines = [json.loads(line) for line in log.splitlines()]
    took = [line for line in lines if line["message"].startswith("took over execution")]
    assert [(line["level"], line["execution_id"]) for line in took] == [("INFO", execution["id"])]
    assert took[0]["message"] == f"took over execution {execution['id']} (started)"
    ended = [line["message"] for line in lines if line.get("execution_id") == execution["id"]]
    assert ended[-1] == f"execution {execution['id']} ended completed"


def test_text_logs_without_an_access_log_by_default(home: Path) -> None:
    running = Running(home)
    httpx.get(f"{running.url}/healthz")
    text = running.stop()
    assert "INFO dalsegno.manager dalsegno manager" in text
    assert "dalsegno.access" not in text
    assert not text.lstrip().startswith("{")


def test_healthz_readyz_and_metrics_need_no_token(manager: Running) -> None:
    execution_id = run_one(manager, "deploy", hosts=3)
    assert httpx.get(f"{manager.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{manager.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "reason": "ready", "schema": ready.json()["schema"]}
    metrics = httpx.get(f"{manager.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    values = {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in metrics.text.splitlines()
        if line and not line.startswith("#")
    }
    assert values['dalsegno_executions{state="completed"}'] == 1.0
    assert values['dalsegno_executions{state="pending"}'] == 0.0
    with manager.api() as api:
        tasks = api.get(f"/executions/{execution_id}").json()["tasks"]
    assert values["dalsegno_tasks_started_total"] == len(tasks)
    assert values['dalsegno_tasks_ended_total{outcome="succeeded"}'] == len(tasks)
    assert values["dalsegno_takeovers_total"] == 0.0
    assert values['dalsegno_store_seconds_count{operation="apply"}'] >= 1
    assert values["dalsegno_running_executions"] == 0.0
    assert "process_resident_memory_bytes" in values


def test_readyz_is_503_when_the_schema_is_not_the_one_this_version_needs(
    home: Path, manager: Running
) -> None:
    import sqlite3

    with sqlite3.connect(home / "dalsegno.db") as db:
        current = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    ready = httpx.get(f"{manager.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == f"the schema is at 0001, this version needs {current}"
    with sqlite3.connect(home / "dalsegno.db") as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (current,))
    assert httpx.get(f"{manager.url}/readyz").status_code == 200


def test_readyz_is_503_within_its_timeout_while_the_store_stalls_then_ready_again(
    home: Path, postgres, postgres_database: str
) -> None:
    url = postgres.store_url(postgres_database)
    running = Running(home, DALSEGNO_STORE=url)
    try:
        assert httpx.get(f"{running.url}/readyz").status_code == 200
        with psycopg.connect(postgres.dsn(postgres_database)) as blocker:
            blocker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            stalled = httpx.get(f"{running.url}/readyz", timeout=10)
            waited = time.monotonic() - began
            assert stalled.status_code == 503
            assert stalled.json()["reason"] == "the store did not answer within 2 s"
            assert waited < 5, waited
            assert httpx.get(f"{running.url}/healthz").status_code == 200  # alive all along
        wait_for(lambda: httpx.get(f"{running.url}/readyz").status_code == 200, 10, "ready again")
    finally:
        running.stop()


def test_metrics_count_the_tasks_agents_claimed(home: Path, manager: Running) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", "dalsegno", "agent", "--queue", "web", "--manager",
         manager.url, "--token", manager.token],
        cwd=WORKFLOWS, env=cli_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with manager.api() as api:
            started = api.post(
                "/executions",
                json={"workflow": f"{WORKFLOWS / 'agent_flows.py'}:many",
                      "params": {"count": 5, "queue": "web"}},
            )  # fmt: skip
            assert started.status_code == 201, started.text
            execution_id = started.json()["id"]
            wait_for(
                lambda: api.get(f"/executions/{execution_id}").json()["status"] == "completed",
                60.0,
                "the agent to run the tasks",
            )
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    text = httpx.get(f"{manager.url}/metrics").text
    claims = next(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("dalsegno_agent_claims_total ")
    )
    assert claims == 5.0
