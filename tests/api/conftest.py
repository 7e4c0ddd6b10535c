"""The REST API served by a real uvicorn server on a free port, over a real SQLite store.

One server runs for the session; each test mounts a fresh app over its own store.

No manager runs here: an execution created through the API stays `pending`. Every test's
store starts as a copy of one made once a session, holding a completed and a failed
execution run in-process with `service.start` (the `ended` fixture names them).
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from conftest import WORKFLOWS
from dalsegno.api.app import create_app
from dalsegno.engine.runner import EngineConfig
from dalsegno.model.access import Caller, Role
from dalsegno.service.access import AccessService
from dalsegno.service.executions import ExecutionService
from dalsegno.service.tokens import same_token
from dalsegno.service.views import event_json, execution_json
from dalsegno.store import Store, open_store

ADMIN_TOKEN = "admin-token-for-tests"
AGENT_TOKEN = "agent-token-for-tests"
BEHAVIOUR = WORKFLOWS / "behaviour.py"


def ref(name: str) -> str:
    return f"{BEHAVIOUR}:{name}"


def agent_callers(service: ExecutionService) -> Callable[[str], Caller | None]:
    """An agent token scoped to one queue (it may not use the execution endpoints), and
    the tokens of the test's store."""
    stored = AccessService.on(service.store)

    def caller_of(token: str) -> Caller | None:
        if same_token(token, AGENT_TOKEN):
            return Caller("agent-builds", Role.AGENT, "builds")
        return stored.caller_of(token)

    return caller_of


@dataclass
class LiveApi:
    """The app served on `url`; `changes` counts the `on_change` calls (manager wake-ups)."""

    url: str
    service: ExecutionService
    changes: list[float] = field(default_factory=list)

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=10)


class Mount:
    """The ASGI app the session's server hands every request to: each test mounts its own
    app (over its own store), so one real server serves them all."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "no app mounted: use the `live` fixture"
        await self.app(scope, receive, send)


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


@pytest.fixture(scope="session")
def server() -> Iterator[tuple[ServerThread, Mount]]:
    mount = Mount()
    with ServerThread(mount) as running:
        yield running, mount


@pytest.fixture
def live(server: tuple[ServerThread, Mount], service: ExecutionService) -> Iterator[LiveApi]:
    """The app over this test's store, served by the session's uvicorn server."""
    running, mount = server
    api = LiveApi(running.url, service)
    mount.app = create_app(
        service,
        ADMIN_TOKEN,
        on_change=lambda: api.changes.append(time.monotonic()),
        callers=agent_callers(service),
        claim_wait_limit=0.2,  # an agent's claim that finds nothing answers at once
    )
    try:
        yield api
    finally:
        mount.app = None


@pytest.fixture
def client(live: LiveApi) -> Iterator[httpx.Client]:
    with live.client() as opened:
        yield opened


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store holding a completed and a failed execution, run in-process once a session."""
    path = tmp_path_factory.mktemp("template") / "dalsegno.db"
    store = open_store(f"sqlite:///{path}")
    try:
        service = ExecutionService(store, EngineConfig(concurrency=4, poll_interval=0.05))
        found = {
            "completed": service.start(ref("deploy"), {"hosts": 1}).execution_id,
            "failed": service.start(ref("deploy"), {"hosts": 1, "fail_app": True}).execution_id,
        }
        for status, execution_id in found.items():
            assert service.get(execution_id)[0].status == status
    finally:
        store.close()
    return path, found


@pytest.fixture
def store_url(home: Path, template: tuple[Path, dict[str, str]]) -> str:
    """Each test's store starts as a copy of the template (overrides tests/conftest.py)."""
    path = home / "dalsegno.db"
    with closing(sqlite3.connect(template[0])) as source, closing(sqlite3.connect(path)) as copy:
        source.backup(copy)
    return f"sqlite:///{path}"


@pytest.fixture
def ended(template: tuple[Path, dict[str, str]], store: Store) -> dict[str, str]:
    """The ids of the completed and the failed execution every test's store starts with."""
    return dict(template[1])


def snapshot(service: ExecutionService) -> list[dict[str, Any]]:
    """Every execution with its tasks, attempts and events: what "nothing changed" compares."""
    found = []
    for execution in service.list_executions():
        tasks = service.store.list_tasks(execution.id)
        found.append(
            {
                "execution": execution_json(execution, tasks),
                "lease": (execution.lease_owner, execution.lease_expires_at, execution.lease_token),
                "attempts": service.store.list_attempts(execution.id),
                "events": [event_json(event) for event in service.events(execution.id)],
            }
        )
    return found
