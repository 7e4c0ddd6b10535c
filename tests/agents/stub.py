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
        self.result_status = 200  # what /result answers
        self.result_statuses: dict[str, list[int]] = {}  # by attempt id: the next answers
        self.started_status = 200
        self.claim_status = 200
        self.started_delay = 0.0
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

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.changed:
            self.calls.append((time.time(), path, body))
            self.changed.notify_all()
        if path.endswith("/agents/claim"):
            if self.claim_status != 200:
                return self.claim_status, {"error": "refused"}
            deadline = time.monotonic() + float(body.get("wait", 30))
            with self.changed:
                while not self.assignments and time.monotonic() < deadline:
                    self.changed.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                taken = self.assignments[: int(body.get("limit", 1))]
                del self.assignments[: len(taken)]
            return 200, {"tasks": taken}
        if path.endswith("/started"):
            time.sleep(self.started_delay)
            if self.started_status != 200:
                return self.started_status, {"error": "not yours"}
            return 200, {"attempt_id": path.split("/")[-2], "status": "started"}
        if path.endswith("/heartbeat"):
            return 200, {"kill": list(self.kill), "unknown": list(self.unknown), "interval": 0.1}
        if path.endswith("/result"):
            scripted = self.result_statuses.get(path.split("/")[-2])
            status = scripted.pop(0) if scripted else self.result_status
            if status != 200:
                return status, {"error": "scripted refusal"}
            return 200, {"attempt_id": path.split("/")[-2], "accepted": True}
        return 404, {"error": "no such path"}


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
    }
    found.update(overrides)
    return found
