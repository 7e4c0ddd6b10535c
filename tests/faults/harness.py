"""Real managers under real faults: start them, talk to them, watch their answers.

Every case of the fault suite checks the same five things (docs/reliability.md): the
manager stays up and answers (503 during the fault, never a 5xx other than 503); no
execution is lost; no operation runs twice (the operations append to a run log);
no execution is left in a non-terminal state once the fault is gone; an execution that
ended records the real cause. `Tally` counts them for the figures of docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from acceptance.test_manager_process import free_port, wait_for
from conftest import WORKFLOWS, cli_env

END_STATES = {"completed", "failed", "cancelled"}
FIGURES = os.environ.get("DALSEGNO_FAULT_FIGURES")  # a file each case appends its tally to
# A manager dies with the test process, even one killed by SIGKILL (no orphan managers).
WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


class Manager:
    """`python -m dalsegno manager` on a home, its log kept in a file of the home.

    It runs in a process group of its own (with the processes of its operations), which
    `kill` ends whole; and it dies with the test process (`WITH_PARENT`).
    """

    def __init__(
        self, home: Path, name: str = "manager", args: Iterable[str] = (), **env: str
    ) -> None:
        self.home = home
        self.name = name
        self.args = list(args)
        self.port = free_port()
        self.site = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.site}/api/v1"
        self.log_path = home.parent / f"{name}.log"
        self.env = env
        self.process: subprocess.Popen[str] | None = None

    def start(self, wait: bool = True) -> Manager:
        with self.log_path.open("a") as logged:
            self.process = subprocess.Popen(
                [
                    *WITH_PARENT,
                    sys.executable,
                    "-m",
                    "dalsegno",
                    "manager",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    *self.args,
                ],
                cwd=WORKFLOWS,
                env=cli_env(self.home, **self.env),
                stdout=subprocess.DEVNULL,
                stderr=logged,
                text=True,
                start_new_session=True,
            )
        if wait:
            wait_for(self.ready, 30)
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            msg = f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
            raise AssertionError(msg)
        try:
            return httpx.get(f"{self.site}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def headers(self) -> dict[str, str]:
        token = (self.home / "token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, timeout: float = 30.0, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers=self.headers, timeout=timeout, **kwargs
        )

    def start_execution(self, workflow: str, **params: Any) -> str:
        answer = self.call("POST", "/executions", json={"workflow": workflow, "params": params})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def execution(self, execution_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/executions/{execution_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        answer = self.call("GET", f"/executions/{execution_id}/events")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def wait_ended(self, execution_ids: Iterable[str], timeout: float = 60.0) -> dict[str, Any]:
        """Every execution in an end state; returns them by id."""
        found: dict[str, Any] = {}

        def ended() -> bool:
            for execution_id in execution_ids:
                if execution_id not in found or found[execution_id]["status"] not in END_STATES:
                    found[execution_id] = self.execution(execution_id)
            return all(execution["status"] in END_STATES for execution in found.values())

        wait_for(ended, timeout)
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit code once it stopped."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL to its whole process group (a stopped one too), and reap it."""
        if self.process is None:
            return
        for sent in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sent)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


class Watch:
    """Asks a manager the same thing every `every` seconds in a thread; keeps the answers.

    A watched request that gets no answer within its timeout counts as `hung`.
    """

    def __init__(
        self, manager: Manager, method: str = "GET", path: str = "/executions", **kwargs: Any
    ) -> None:
        self.manager = manager
        self.method, self.path, self.kwargs = method, path, kwargs
        self.answers: list[tuple[float, int, str]] = []  # (time, status, body), 0 = hung
        self.created: list[str] = []  # the ids of the executions a 201 acknowledged
        self.durations: list[float] = []  # seconds each request took to be answered
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                answer = self.manager.call(self.method, self.path, timeout=20, **self.kwargs)
                self.durations.append(time.monotonic() - began)
                self.answers.append((time.monotonic(), answer.status_code, answer.text[:300]))
                if answer.status_code == 201:
                    self.created.append(str(answer.json()["id"]))
            except httpx.HTTPError as exc:
                self.answers.append((time.monotonic(), 0, repr(exc)))
            self._stop.wait(0.2)

    def statuses(self) -> Counter[int]:
        return Counter(status for _, status, _ in self.answers)

    def check(self, allowed: Iterable[int] = (200, 201, 503)) -> None:
        """Every answer was one of `allowed` (never a 500, never no answer)."""
        wrong = [answer for answer in self.answers if answer[1] not in set(allowed)]
        assert not wrong, f"unexpected answers: {wrong[:5]}"


def run_counts(log: Path) -> Counter[tuple[str, str]]:
    """How many times each (execution, task key) ran, from the operations' run log."""
    counts: Counter[tuple[str, str]] = Counter()
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                counts[(entry["execution"], entry["key"])] += 1
    return counts


def doubled(log: Path) -> list[tuple[str, str]]:
    """The (execution, task key) pairs that ran more than once."""
    return [pair for pair, count in run_counts(log).items() if count > 1]


class Tally:
    """The figures of one case: faults injected and survived, executions lost, doubled runs."""

    def __init__(self, case: str, backend: str) -> None:
        self.case, self.backend = case, backend
        self.injected = self.survived = self.lost = self.doubled = 0

    def record(self) -> None:
        if FIGURES:
            with open(FIGURES, "a", encoding="utf-8") as out:
                out.write(json.dumps(vars(self)) + "\n")
