"""A small stand-in for a manager's agent endpoints, for the agent's unit tests only.

A real HTTP server (http.server in a thread) that hands out the assignments a test queued,
records every call with the time it came, and answers what the test scripted. The proofs
against the real manager are in test_agents_e2e.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubManager:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.assignments: list[dict[str, Any]] = []
        self.kill: list[str] = []
        self.unknown: list[str] = []
        # How the stub answers each delivered result: a status ("accepted", "conflict",
        # ...), or an HTTP code that the whole exchange carrying it answers.
        self.result_status: str | int = "accepted"
        self.result_statuses: dict[str, list[str | int]] = {}  # by attempt id: the next
        self.claim_status = 200  # what an exchange that claims answers
        self.exchange_delay = 0.0  # seconds an exchange that hands out tasks waits first
        self.waiting_beats = False  # what the heartbeat answers: a waiting claim is a beat
        self.changed = threading.Condition()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue(self, **assignment: Any) -> None:
        with self.changed:
            self.assignments.append(assignment)
            self.changed.notify_all()

    def paths(self, suffix: str) -> list[tuple[float, dict[str, Any]]]:
        with self.changed:
            return [(at, body) for at, path, body in self.calls if path.endswith(suffix)]

    def claims(self) -> list[tuple[float, dict[str, Any]]]:
        """The exchanges that claimed (a limit above 0), with their time."""
        return [(at, body) for at, body in self.paths("/agents/exchange") if body["limit"]]

    def results(self) -> list[tuple[float, dict[str, Any]]]:
        """Every result delivered (answered or not), in order, with its call's time."""
        return [
            (at, result)
            for at, body in self.paths("/agents/exchange")
            for result in body["results"]
        ]

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.changed:
            self.calls.append((time.time(), path, body))
            self.changed.notify_all()
        if path.endswith("/agents/exchange"):
            return self._exchange(body)
        if path.endswith("/heartbeat"):
            return 200, {
                "kill": list(self.kill),
                "unknown": list(self.unknown),
                "interval": 0.1,
                "waiting_beats": self.waiting_beats,
            }
        return 404, {"error": "no such path"}

    def _exchange(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answers = []
        for result in body["results"]:
            scripted = self.result_statuses.get(result["attempt_id"])
            status = scripted.pop(0) if scripted else self.result_status
            if isinstance(status, int):
                return status, {"error": "scripted refusal"}
            answers.append({"attempt_id": result["attempt_id"], "status": status})
        if not body["limit"]:
            return 200, {"results": answers, "tasks": []}
        if self.claim_status != 200:
            return self.claim_status, {"error": "refused"}
        deadline = time.monotonic() + float(body.get("wait", 30))
        with self.changed:
            while not self.assignments and time.monotonic() < deadline:
                self.changed.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            taken = self.assignments[: int(body["limit"])]
            del self.assignments[: len(taken)]
        if taken:
            time.sleep(self.exchange_delay)
        return 200, {"results": answers, "tasks": taken}


@contextmanager
def stub_manager() -> Iterator[StubManager]:
    stub = StubManager()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            status, answer = stub.answer(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            return  # an agent that stops drops its long-poll: not the test's business

    stub.server = Server(("127.0.0.1", 0), Handler)
    stub.server.daemon_threads = True
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()


def assignment(attempt_id: str, operation: str, **overrides: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "attempt_id": attempt_id,
        "execution_id": "e1",
        "graph": "main",
        "task_key": attempt_id,
        "operation": operation,
        "kwargs": {},
        "retries": 0,
        "resume": False,
        "idempotency_key": f"e1-{attempt_id}",
        "timeout": None,
        "process": False,
        "attempt": 0,
    }
    found.update(overrides)
    return found
