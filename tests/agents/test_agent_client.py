"""The agent's HTTP client (`dalsegno.agent.client`) against a real HTTP server in a
thread: keep-alive connections, a connection the server closed while it was idle (uvicorn
closes them after 5 s), and the three ways a call ends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dalsegno.agent.client import ManagerClient, Refused, Unreachable


class _Server:
    def __init__(self) -> None:
        self.connections: set[int] = set()  # client ports seen
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.status = 200
        self.close_after_answer = False  # as an idle keep-alive timeout would, unsaid
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server calls it by this name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.connections.add(self.client_address[1])
                server.calls.append((self.path, body, self.headers["Authorization"]))
                data = json.dumps(
                    {"results": [], "tasks": []} if server.status < 400 else {"error": "no"}
                ).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if server.close_after_answer:
                    self.close_connection = True

            def log_message(self, *_: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    found = _Server()
    yield found
    found.http.shutdown()
    found.http.server_close()


def exchange(client: ManagerClient) -> tuple[list[Any], list[Any]]:
    return client.exchange("web", "a1", [], 1, 0.0, "claim0001")


def test_calls_of_one_thread_share_one_keep_alive_connection(server: _Server) -> None:
    client = ManagerClient(server.url, "secret")
    try:
        for _ in range(5):
            assert exchange(client) == ([], [])
    finally:
        client.close()
    assert len(server.connections) == 1
    path, body, authorization = server.calls[0]
    assert path == "/api/v1/agents/exchange"
    assert body == {
        "queue": "web",
        "agent": "a1",
        "results": [],
        "limit": 1,
        "wait": 0.0,
        "claim_id": "claim0001",
        "repeat": False,
    }
    assert authorization == "Bearer secret"


def test_a_connection_the_server_closed_while_idle_is_opened_anew(server: _Server) -> None:
    """Not sent on the closed connection (which would end as Unreachable: the manager
    would look gone for a call)."""
    server.close_after_answer = True
    client = ManagerClient(server.url, "secret")
    try:
        for _ in range(3):
            assert exchange(client) == ([], [])
            time.sleep(0.1)  # the server's FIN arrives
    finally:
        client.close()
    assert len(server.connections) == 3


def test_4xx_is_refused_5xx_and_no_server_are_unreachable(server: _Server) -> None:
    client = ManagerClient(server.url, "secret")
    try:
        server.status = 403
        with pytest.raises(Refused, match="403: no") as refused:
            exchange(client)
        assert refused.value.status == 403
        server.status = 503
        with pytest.raises(Unreachable, match="503: no"):
            exchange(client)
    finally:
        client.close()
    with pytest.raises(Unreachable, match="closed"):
        exchange(client)
    server.http.shutdown()
    server.http.server_close()
    gone = ManagerClient(server.url, "secret")
    with pytest.raises(Unreachable, match="ConnectionRefusedError"):
        exchange(gone)
