"""The web UI in a real browser: a real `dalsegno manager` process (uvicorn, the manager
loop, a SQLite file in a temporary DALSEGNO_HOME) driven by Debian's Chromium through
Playwright. Screenshots of each page go to test-results/screenshots/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from conftest import TESTS, WORKFLOWS, cli_env

CHROMIUM = os.environ.get("DALSEGNO_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = TESTS.parent / "test-results" / "screenshots"
FLOWS = WORKFLOWS / "ui_flows.py"
END_STATES = {"completed", "failed", "cancelled"}


def ref(name: str) -> str:
    return f"{FLOWS}:{name}"


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveManager:
    """A `dalsegno manager` process: its URL, its admin token, and its REST API."""

    url: str
    token: str
    home: Path
    process: subprocess.Popen[str]

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.token}"}
        )

    def start(self, workflow: str, **params: Any) -> str:
        """Start an execution through the REST API; returns its id."""
        with self.api as api:
            answer = api.post("/executions", json={"workflow": ref(workflow), "params": params})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def execution(self, execution_id: str) -> dict[str, Any]:
        with self.api as api:
            answer = api.get(f"/executions/{execution_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def status(self, execution_id: str) -> str:
        return str(self.execution(execution_id)["status"])

    def wait_status(self, execution_id: str, wanted: str, timeout: float = 30.0) -> None:
        wait_for(lambda: self.status(execution_id) == wanted, timeout, f"status {wanted}")

    def executions(self) -> list[dict[str, Any]]:
        with self.api as api:
            found: list[dict[str, Any]] = api.get("/executions").json()
        return found


@pytest.fixture
def manager_args() -> list[str]:
    """More arguments of the manager (a test module may override it: `--workflows`)."""
    return []


@pytest.fixture
def manager(home: Path, manager_args: list[str]) -> Iterator[LiveManager]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dalsegno",
            "manager",
            "--bind",
            f"127.0.0.1:{port}",
            "--grace",
            "1",
            *manager_args,
        ],
        cwd=WORKFLOWS,
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, "the manager exited"
        try:
            return httpx.get(f"{url}/login").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, 20.0, "the manager to listen")
        token = (home / "token").read_text().strip()
        yield LiveManager(url, token, home, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, manager: LiveManager) -> Iterator[Page]:
    """A fresh browser context on the manager; a JavaScript dialog fails the test."""
    context = browser.new_context(base_url=manager.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()
    assert dialogs == [], f"a script ran and opened a dialog: {dialogs}"


def sign_in(page: Page, manager: LiveManager) -> None:
    page.goto("/login")
    page.fill("input[name=token]", manager.token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
