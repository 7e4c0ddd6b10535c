"""The CLI in remote mode (docs/interface.md, CLI and REST API): `--manager URL` speaks REST.

The manager here is the real one, assembled in the test process the way `dalsegno
manager` assembles it (src/dalsegno/cli/serve.py): the REST API of `create_app` served by
uvicorn on a free port, and a `Manager` claim loop that `on_change` wakes, so what the API
creates the manager runs at once, over the test's SQLite file. Only the process boundary
of `dalsegno manager` is missing (its command is not wired into the CLI yet); the CLI
runs as a real `python -m dalsegno` subprocess, as in every acceptance test.

Remote output is compared with local output on the same store: `executions list/get` and
`events` must print exactly what local mode prints, tables included.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from conftest import WORKFLOWS, run_cli, start_cli
from dalsegno.api.app import create_app
from dalsegno.manager.manager import Manager, ManagerConfig
from dalsegno.service.executions import ExecutionService
from dalsegno.service.views import event_json, execution_json

TOKEN = "remote-cli-test-token-0123456789abcdef"  # token files need 32 characters
BEHAVIOUR = WORKFLOWS / "behaviour.py"
END_STATES = {"completed", "failed", "cancelled"}


def ref(name: str) -> str:
    """An absolute reference: the manager imports it from its own current directory."""
    return f"{BEHAVIOUR}:{name}"


class ServerThread:
    """uvicorn in a background thread, listening on a socket bound to a free port."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        host, port = self.socket.getsockname()
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "the server thread died"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
        assert not self.thread.is_alive(), "the server did not stop"


@dataclass
class Remote:
    """The live manager at `url`, and the CLI pointed at it."""

    url: str
    home: Path
    service: ExecutionService

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`dalsegno --manager URL --token TOKEN ARGS`, waited for."""
        return run_cli(self.home, "--manager", self.url, "--token", TOKEN, *args, **env)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`dalsegno --manager URL --token TOKEN ARGS`, returned at once."""
        return start_cli(self.home, "--manager", self.url, "--token", TOKEN, *args)

    def local(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command in local mode, on the same store."""
        return run_cli(self.home, *args)

    def status(self, execution_id: str) -> str:
        return str(self.service.find(execution_id).status.value)

    def wait_ended(self, execution_id: str, timeout: float = 20.0) -> str:
        wait_for(lambda: self.status(execution_id) in END_STATES, timeout, "the end")
        return self.status(execution_id)


@pytest.fixture
def remote(home: Path, service: ExecutionService) -> Iterator[Remote]:
    workers = Manager(service, ManagerConfig(max_executions=8, grace=1.0))
    app = create_app(service, TOKEN, on_change=workers.wake)
    workers.start()
    try:
        with ServerThread(app) as server:
            yield Remote(server.url, home, service)
    finally:
        workers.stop(grace=1.0)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Path]:
    """The directory of `gate` operations; every gate is opened when the test ends."""
    path = tmp_path / "gates"
    path.mkdir()
    yield path
    for name in ("a", "b", "c"):
        (path / f"{name}.go").touch()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def one_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one line of stderr of a command that must exit `code` (2: refused)."""
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def snapshot(service: ExecutionService) -> list[dict[str, Any]]:
    """Every execution with its tasks and events: what "nothing changed" compares."""
    return [
        {
            "execution": execution_json(execution, service.store.list_tasks(execution.id)),
            "events": [event_json(event) for event in service.events(execution.id)],
        }
        for execution in service.list_executions()
    ]


def both_modes(
    remote: Remote, commands: Sequence[tuple[str, ...]]
) -> list[tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]]:
    """Each command in local mode and in remote mode (all at once: they only read)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        here = [pool.submit(remote.local, *args) for args in commands]
        there = [pool.submit(remote, *args) for args in commands]
        return [(local.result(), far.result()) for local, far in zip(here, there, strict=True)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ran(remote: Remote, *args: str) -> str:
    """`run` on the manager: the id of the execution it created (the newest)."""
    done = remote("run", *args)
    assert done.returncode in (0, 1, 3), done.stderr
    newest = remote.service.list_executions()[0]
    assert f"Execution {newest.id} {newest.status.value}" in done.stderr
    return newest.id


# start and run ------------------------------------------------------------------------


def test_executions_start_prints_the_id_and_returns_at_once(remote: Remote, gates: Path) -> None:
    began = time.monotonic()
    done = remote("executions", "start", ref("gated_chain"), "-p", f"dir={gates}")

    assert done.returncode == 0, done.stderr
    execution_id = done.stdout.strip()
    assert done.stdout == execution_id + "\n"
    assert remote.service.find(execution_id).workflow == ref("gated_chain")
    # the manager runs it: its first task waits on its gate, after the command returned
    wait_for((gates / "a.running").exists, what="the manager to run task a")
    assert remote.status(execution_id) == "started"
    assert time.monotonic() - began < 15
    (gates / "a.go").touch()
    assert remote.wait_ended(execution_id) == "completed"


def test_run_follows_the_execution_to_completion_exit_0(remote: Remote) -> None:
    done = remote("run", ref("deploy"), "-p", "hosts=2")

    assert done.returncode == 0, done.stderr
    (execution,) = remote.service.list_executions()
    assert execution.status == "completed"
    assert done.stderr.splitlines() == [
        f"Execution {execution.id}",
        f"Execution {execution.id} completed",
    ]
    lines = done.stdout.splitlines()
    messages = [line.partition(" ")[2] for line in lines]
    assert messages[0].endswith("Starting 'deploy' workflow execution")
    assert messages[-1].endswith("'deploy' workflow execution succeeded")
    assert any(line.endswith("[main/vm1] Task succeeded 'vm1'") for line in lines)
    # every event, once, in order, in the format of local mode
    assert done.stdout == remote.local("events", execution.id).stdout


def test_run_failed_exits_1(remote: Remote) -> None:
    done = remote("run", ref("deploy"), "-p", "hosts=1", "-p", "fail_app=true")

    assert done.returncode == 1, done.stderr
    (execution,) = remote.service.list_executions()
    assert execution.status == "failed"
    assert "app install failed" in (execution.error or "")
    assert "Task failed 'app' -> NonRecoverableError: app install failed" in done.stdout
    assert f"'deploy' workflow execution failed: {execution.error}" in done.stdout
    assert done.stderr.splitlines()[-1] == f"Execution {execution.id} failed: {execution.error}"
    assert "Traceback" not in done.stderr


def test_run_quiet_prints_no_events(remote: Remote) -> None:
    done = remote("run", ref("deploy"), "-p", "hosts=1", "-q")

    assert done.returncode == 0, done.stderr
    (execution,) = remote.service.list_executions()
    assert done.stdout == ""
    assert done.stderr == f"Execution {execution.id} completed\n"


def test_run_ends_3_when_the_execution_is_cancelled(remote: Remote, gates: Path) -> None:
    run = remote.start("run", ref("gated_chain"), "-p", f"dir={gates}")
    try:
        wait_for((gates / "a.running").exists, what="task a to start")
        (execution,) = remote.service.list_executions()

        cancel = remote("executions", "cancel", execution.id)

        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout == f"Execution {execution.id} cancelling\n"
        (gates / "a.go").touch()
        out, err = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 3, err
    assert err.splitlines()[-1] == f"Execution {execution.id} cancelled"
    assert "'gated_chain' workflow execution cancelled" in out
    tasks = {task.key: task.status.value for task in remote.service.get(execution.id)[1]}
    assert tasks == {"a": "succeeded", "b": "pending", "c": "pending"}


def test_ctrl_c_cancels_on_the_manager(remote: Remote, gates: Path) -> None:
    run = remote.start("run", ref("gated_chain"), "-p", f"dir={gates}")
    try:
        wait_for((gates / "a.running").exists, what="task a to start")
        (execution,) = remote.service.list_executions()
        run.send_signal(signal.SIGINT)
        wait_for(lambda: remote.status(execution.id) == "cancelling", what="the cancel")
        (gates / "a.go").touch()
        _, err = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 3, err
    assert "cancel requested (Ctrl-C again to force)" in err
    assert remote.status(execution.id) == "cancelled"


def test_second_ctrl_c_forces_on_the_manager(remote: Remote, gates: Path) -> None:
    run = remote.start("run", ref("gated_chain"), "-p", f"dir={gates}")
    try:
        wait_for((gates / "a.running").exists, what="task a to start")
        (execution,) = remote.service.list_executions()
        run.send_signal(signal.SIGINT)
        wait_for(lambda: remote.status(execution.id) == "cancelling", what="the cancel")
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=20)  # the gate stays closed: force does not wait
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 3, err
    assert "force requested" in err
    assert remote.status(execution.id) == "cancelled"
    assert remote.service.get(execution.id)[1][0].status == "started"  # left running


# reading: exactly what local mode prints ----------------------------------------------


def _without_durations(text: str) -> str:
    """Durations are computed from timestamps that the JSON rounds to microseconds."""
    return re.sub(r"\b\d+\.\d{2}s\b", "<duration>", text)


def test_list_get_and_events_print_what_local_mode_prints(remote: Remote) -> None:
    completed = ran(remote, ref("deploy"), "-p", "hosts=2")
    failed = ran(remote, ref("deploy"), "-p", "hosts=1", "-p", "fail_app=true")

    commands = [
        ("executions", "list", "--json"),
        ("executions", "list", "--status", "failed", "--json"),
        ("executions", "get", completed, "--json"),
        ("executions", "get", failed[:8], "--json"),  # a unique prefix of the id
        ("events", failed, "--json"),
        ("events", completed),
        ("executions", "list"),
        ("executions", "get", failed),
    ]
    for args, (here, there) in zip(commands, both_modes(remote, commands), strict=True):
        assert there.returncode == 0, there.stderr
        assert here.returncode == 0, here.stderr
        assert _without_durations(there.stdout) == _without_durations(here.stdout), args

    listed = json.loads(remote("executions", "list", "--json").stdout)
    assert [execution["id"] for execution in listed] == [failed, completed]
    got = json.loads(remote("executions", "get", failed, "--json").stdout)
    assert {task["key"]: task["status"] for task in got["tasks"]} == {
        "vm0": "succeeded",
        "app": "failed",
    }


def test_events_after_and_follow(remote: Remote, gates: Path) -> None:
    started = remote("executions", "start", ref("gated_chain"), "-p", f"dir={gates}")
    execution_id = started.stdout.strip()
    wait_for((gates / "a.running").exists, what="task a to start")
    follow = remote.start("events", execution_id, "--follow", "--json")
    try:
        time.sleep(1.0)
        assert follow.poll() is None, "--follow ended while the execution runs"
        (gates / "a.go").touch()
        out, err = follow.communicate(timeout=20)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    assert follow.returncode == 0, err
    followed = [json.loads(line) for line in out.splitlines()]
    assert out == remote.local("events", execution_id, "--json").stdout
    assert followed[-1]["message"] == "'gated_chain' workflow execution succeeded"

    after = remote("events", execution_id, "--json", "--after", followed[2]["id"])
    assert after.returncode == 0, after.stderr
    assert [json.loads(line) for line in after.stdout.splitlines()] == followed[3:]


# resume and cancel ----------------------------------------------------------------------


def test_resume_of_a_failed_execution(remote: Remote, gates: Path) -> None:
    # the gate gives up at once: task a fails, and so does the execution
    execution_id = ran(remote, ref("gated_chain"), "-p", f"dir={gates}", "-p", "limit=0.2")
    assert remote.status(execution_id) == "failed"
    (gates / "a.go").touch()

    for extra in ((), ("--json",)):
        args = ("executions", "resume", execution_id, "--dry-run", *extra)
        here, there = remote.local(*args), remote(*args)
        assert there.returncode == 0, there.stderr
        assert there.stdout == here.stdout
    assert (
        "Nothing was changed (dry run)"
        in remote("executions", "resume", execution_id, "--dry-run").stdout
    )
    assert remote.status(execution_id) == "failed"

    done = remote("executions", "resume", execution_id)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Execution {execution_id} pending\n"
    assert remote.wait_ended(execution_id) == "completed"
    tasks = remote.service.get(execution_id)[1]
    assert [task.status.value for task in tasks] == ["succeeded"] * 3
    assert (gates / "a.runs").read_text().splitlines() == ["0", "0"]  # reset, then run again


def test_cancel_modes(remote: Remote, gates: Path) -> None:
    first = remote("executions", "start", ref("gated_chain"), "-p", f"dir={gates}")
    execution_id = first.stdout.strip()
    wait_for((gates / "a.running").exists, what="task a to start")

    done = remote("executions", "cancel", execution_id, "--force")

    assert done.returncode == 0, done.stderr
    assert done.stdout in (
        f"Execution {execution_id} force_cancelling\n",
        f"Execution {execution_id} cancelled\n",
    )
    assert remote.wait_ended(execution_id) == "cancelled"
    again = one_line(remote("executions", "cancel", execution_id, "--kill"))
    assert again == f"error: Cannot cancel - execution {execution_id} is cancelled"
    both = one_line(remote("executions", "cancel", execution_id, "--force", "--kill"))
    assert "--force and --kill" in both


# refusals: exit 2, one line, nothing changed ------------------------------------------


@pytest.fixture
def ended(remote: Remote) -> dict[str, str]:
    return {
        "completed": ran(remote, ref("deploy"), "-p", "hosts=1"),
        "failed": ran(remote, ref("deploy"), "-p", "hosts=1", "-p", "fail_app=true"),
    }


def test_refusals_say_what_local_mode_says(remote: Remote, ended: dict[str, str]) -> None:
    before = snapshot(remote.service)
    commands = [
        ("executions", "get", "no-such-execution"),
        ("executions", "get", "no-such-execution", "--json"),
        ("events", "no-such-execution"),
        ("events", "no-such-execution", "--follow"),
        ("executions", "cancel", "no-such-execution"),
        ("executions", "resume", "no-such-execution"),
        ("executions", "resume", ended["completed"]),
        ("executions", "resume", ended["completed"], "--dry-run"),
        ("executions", "cancel", ended["failed"]),
        ("run", f"{WORKFLOWS / 'missing.py'}:deploy"),
        ("run", ref("not_a_workflow")),
        ("executions", "start", ref("deploy"), "-p", "hosts=1", "-p", "nope=1"),
        ("run", ref("deploy"), "--params", "[1]"),
    ]
    for args, (here, there) in zip(commands, both_modes(remote, commands), strict=True):
        assert one_line(there) == one_line(here), args
    assert snapshot(remote.service) == before


def test_malformed_requests_are_refused(remote: Remote, ended: dict[str, str]) -> None:
    before = snapshot(remote.service)
    assert "status" in one_line(remote("executions", "list", "--status", "nope"))
    assert "after" in one_line(remote("events", ended["failed"], "--after", "not-an-id"))
    assert snapshot(remote.service) == before


def test_a_wrong_token_is_refused(remote: Remote, ended: dict[str, str]) -> None:
    before = snapshot(remote.service)
    for args in (
        ("executions", "list"),
        ("executions", "start", ref("deploy")),
        ("run", ref("deploy")),
        ("executions", "cancel", ended["failed"]),
        ("events", ended["failed"]),
    ):
        done = run_cli(remote.home, "--manager", remote.url, "--token", "wrong", *args)
        line = one_line(done)
        assert line.startswith("error: the manager refused the token"), line
    assert snapshot(remote.service) == before


@pytest.mark.parametrize(
    "args",
    [
        ("executions", "list"),
        ("executions", "get", "abc", "--json"),
        ("executions", "start", "x.py:y"),
        ("run", "x.py:y"),
        ("events", "abc", "--follow"),
        ("executions", "cancel", "abc"),
        ("executions", "resume", "abc", "--dry-run"),
    ],
)
def test_an_unreachable_manager(home: Path, args: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    line = one_line(run_cli(home, "--manager", url, "--token", TOKEN, *args))

    assert line.startswith(f"error: cannot reach the manager at {url}: "), line


def test_a_manager_url_that_is_not_http(home: Path) -> None:
    line = one_line(run_cli(home, "--manager", "localhost:8347", "--token", TOKEN, "run", "x:y"))
    assert "http://" in line


# the token ------------------------------------------------------------------------------


def test_the_token_file_in_dalsegno_home_is_the_default(remote: Remote, tmp_path: Path) -> None:
    (remote.home / "token").write_text(TOKEN + "\n")
    (remote.home / "token").chmod(0o600)

    done = run_cli(remote.home, "executions", "list", "--json", DALSEGNO_MANAGER=remote.url)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_token_sources_and_their_order(remote: Remote, tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(TOKEN + "\n")
    bad.write_text("wrong-token-of-at-least-32-characters\n")
    (remote.home / "token").write_text("wrong-token-of-at-least-32-characters\n")
    for path in (good, bad, remote.home / "token"):
        path.chmod(0o600)  # a token file others could read is refused
    base = ("--manager", remote.url)

    def exit_code(*args: str, **env: str) -> int:
        return run_cli(remote.home, *base, *args, "executions", "list", **env).returncode

    # --token, then --token-file, then DALSEGNO_TOKEN, then $DALSEGNO_HOME/token
    assert exit_code("--token", TOKEN, "--token-file", str(bad), DALSEGNO_TOKEN="wrong") == 0
    assert exit_code("--token-file", str(good), DALSEGNO_TOKEN="wrong") == 0
    assert exit_code("--token-file", str(bad), DALSEGNO_TOKEN=TOKEN) == 2
    assert exit_code(DALSEGNO_TOKEN=TOKEN) == 0
    assert exit_code() == 2  # the home's token file is the wrong one


def test_no_token_at_all(remote: Remote, tmp_path: Path) -> None:
    done = run_cli(remote.home, "--manager", remote.url, "executions", "list")
    line = one_line(done)
    assert "no token" in line
    assert str(remote.home / "token") in line

    missing = tmp_path / "missing"
    done = run_cli(remote.home, "--manager", remote.url, "--token-file", str(missing), "run", "x:y")
    assert str(missing) in one_line(done)
