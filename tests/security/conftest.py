"""Real `dalsegno manager` processes for the security proofs: started in a directory of the
test's choosing, with the flags it gives (`--workflows`, `--tls-cert`...), spoken to over
real HTTP(S). Workflows for them are written into the test's own directories."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import cli_env

FLOWS = '''
from pathlib import Path

from dalsegno import operation, workflow


@operation(resumable=True)
def step(ctx, name: str, fail_flag: str = "", hold: str = "") -> dict:
    import time

    deadline = time.monotonic() + 30
    while hold and Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if fail_flag and Path(fail_flag).exists():
        raise RuntimeError(f"{fail_flag} exists")
    return {"step": name}


@workflow(resumable=True)
def deploy(ctx, hosts: int = 2, fail_flag: str = "", hold: str = ""):
    """Deploys `hosts` hosts, then an app."""
    g = ctx.graph("main")
    vms = [g.add(step, key=f"vm{i}", name=f"vm{i}") for i in range(hosts)]
    app = g.add(step, key="app", name="app", fail_flag=fail_flag, hold=hold)
    g.depend(app, on=vms)
    g.execute()
'''


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


class ManagerProcess:
    """`dalsegno manager ARGS` in `cwd`, on a free port; `stop()` ends it gracefully."""

    def __init__(
        self, home: Path, cwd: Path, *args: str, scheme: str = "http", cacert: str | None = None
    ) -> None:
        self.home = home
        self.cwd = cwd
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=cacert) if cacert else True
        )
        self.log = home.parent / f"manager-{self.port}.log"  # never in a shared directory
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dalsegno", "manager",
                 "--bind", f"127.0.0.1:{self.port}", "--grace", "1", "--lease-timeout", "3",
                 *args],
                cwd=cwd, env=cli_env(home), stdout=subprocess.DEVNULL, stderr=log, text=True,
            )  # fmt: skip
        wait_for(self._answers, 30.0, f"the manager to listen ({self.log.read_text()})")

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"the manager exited: {self.log.read_text()}"
        try:
            return httpx.get(f"{self.url}/healthz", verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def admin_token(self) -> str:
        return (self.home / "token").read_text().strip()

    def api(self, token: str | None = None) -> httpx.Client:
        """The REST API with `token` (default: the admin token)."""
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            verify=self.verify,
            timeout=15,
        )

    def browser(self) -> httpx.Client:
        """A cookie jar on the web UI, not signed in."""
        return httpx.Client(
            base_url=self.url, follow_redirects=False, verify=self.verify, timeout=15
        )

    @contextmanager
    def signed_in(self, token: str | None = None) -> Iterator[httpx.Client]:
        with self.browser() as client:
            form = client.get("/login")
            answer = client.post(
                "/login", data={"token": token or self.admin_token, "csrf": csrf_of(form.text)}
            )
            assert answer.status_code == 303, answer.text
            yield client

    def token(self, name: str, role: str, **extra: Any) -> str:
        """A new token made by the admin over REST; its secret."""
        with self.api() as api:
            made = api.post("/tokens", json={"name": name, "role": role, **extra})
        assert made.status_code == 201, made.text
        return str(made.json()["token"])

    def wait_status(self, execution_id: str, *wanted: str, timeout: float = 30.0) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal found
            with self.api() as api:
                found = api.get(f"/executions/{execution_id}").json()
            return found.get("status") in wanted

        wait_for(reached, timeout, f"{execution_id} to be {' or '.join(wanted)}")
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def managers() -> Iterator[Callable[..., ManagerProcess]]:
    """`managers(home, cwd, *args)` starts a manager; every one is stopped after the test."""
    started: list[ManagerProcess] = []

    def start(home: Path, cwd: Path, *args: str, **kwargs: Any) -> ManagerProcess:
        manager = ManagerProcess(home, cwd, *args, **kwargs)
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.stop()


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    """A directory holding `flows.py` (a resumable `deploy`), where managers start."""
    directory = tmp_path / "allowed"
    directory.mkdir()
    (directory / "flows.py").write_text(FLOWS)
    return directory
