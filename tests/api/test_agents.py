"""The agent protocol over REST (`/api/v1/agents`): every endpoint, every error code,
queue-scoped tokens, idempotent and refused results, the long-poll's wake-up.

The session's real uvicorn server serves an app over this test's real SQLite store; agent
tokens are the store's own (made with POST /agents/tokens). The executions run in this process
(`service.start` in a thread) and wait for the agent the test plays.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any
from unittest import mock

import httpx
import pytest
from starlette.routing import Match

from api.conftest import ADMIN_TOKEN, Mount, ServerThread, snapshot
from conftest import WORKFLOWS
from dalsegno.api.app import create_app
from dalsegno.engine.runner import EngineConfig
from dalsegno.model.limits import MIB
from dalsegno.service.executions import ExecutionService, RunResult
from dalsegno.store import Store

REMOTE = f"{WORKFLOWS / 'agent_server_flows.py'}:remote"


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture
def running_service(store: Store) -> ExecutionService:
    return ExecutionService(store, EngineConfig(concurrency=4, poll_interval=0.05))


@pytest.fixture
def app_client(
    server: tuple[ServerThread, Mount], running_service: ExecutionService
) -> Iterator[httpx.Client]:
    """The app with the store's agent tokens, served by the session's server; admin token."""
    running, mount = server
    mount.app = create_app(running_service, ADMIN_TOKEN, claim_wait_limit=10.0)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        with httpx.Client(base_url=f"{running.url}/api/v1", headers=headers, timeout=30) as client:
            yield client
    finally:
        mount.app = None


def as_token(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}


def new_token(client: httpx.Client, queue: str) -> str:
    answer = client.post("/agents/tokens", json={"queue": queue})
    assert answer.status_code == 201, answer.text
    assert answer.json()["queue"] == queue
    return str(answer.json()["token"])


class Execution:
    def __init__(self, service: ExecutionService, **params: Any) -> None:
        self.result: RunResult | None = None
        ids: list[str] = []

        def run() -> None:
            self.result = service.start(REMOTE, params, on_created=ids.append)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        wait_for(lambda: bool(ids))
        self.id = ids[0]

    def end(self) -> str:
        self.thread.join(15)
        assert self.result is not None and self.result.outcome.status is not None
        return self.result.outcome.status.value


def claim(client: httpx.Client, token: str, queue: str = "web", **body: Any) -> Any:
    return client.post(
        "/agents/claim",
        json={"queue": queue, "agent": "a1", "wait": 10, **body},
        headers=as_token(token),
    )


def error_of(answer: Any) -> str:
    assert set(answer.json()) == {"error"}, answer.text
    return str(answer.json()["error"])


# the whole path --------------------------------------------------------------------------


def test_claim_started_heartbeat_result_with_a_queue_token(
    app_client: httpx.Client, running_service: ExecutionService
) -> None:
    token = new_token(app_client, "web")
    execution = Execution(running_service)
    answer = claim(app_client, token)
    assert answer.status_code == 200
    (assignment,) = answer.json()["tasks"]
    assert set(assignment) == {
        "attempt_id", "execution_id", "graph", "task_key", "operation", "kwargs", "retries",
        "resume", "idempotency_key", "timeout", "process", "attempt",
        "lifecycle", "lifecycle_error",
    }  # fmt: skip
    assert (assignment["lifecycle"], assignment["lifecycle_error"]) == (None, None)  # unbound
    assert (assignment["execution_id"], assignment["graph"], assignment["task_key"]) == (
        execution.id,
        "main",
        "t",
    )
    attempt = assignment["attempt_id"]
    path = f"/agents/attempts/{attempt}"
    started = app_client.post(f"{path}/started", json={"agent": "a1"}, headers=as_token(token))
    assert (started.status_code, started.json()) == (
        200,
        {"attempt_id": attempt, "status": "started"},
    )
    again = app_client.post(f"{path}/started", json={"agent": "a1"}, headers=as_token(token))
    assert again.json() == started.json()
    beat = app_client.post(
        "/agents/heartbeat",
        json={
            "queue": "web", "agent": "a1", "host": "h1", "pid": 7, "concurrency": 2,
            "attempts": [attempt, "gone"],
        },
        headers=as_token(token),
    )  # fmt: skip
    assert (beat.status_code, beat.json()["kill"], beat.json()["unknown"]) == (200, [], ["gone"])
    agents = app_client.get("/agents").json()
    assert agents == [
        {
            "name": "a1",
            "queue": "web",
            "host": "h1",
            "pid": 7,
            "concurrency": 2,
            "last_heartbeat_at": agents[0]["last_heartbeat_at"],
            "running": [
                {
                    "attempt_id": attempt,
                    "execution_id": execution.id,
                    "graph": "main",
                    "task_key": "t",
                    "status": "started",
                }
            ],
        }
    ]
    body = {"agent": "a1", "outcome": "succeeded", "result": {"ok": [1, 2]}}
    result = app_client.post(f"{path}/result", json=body, headers=as_token(token))
    assert (result.status_code, result.json()) == (200, {"attempt_id": attempt, "accepted": True})
    duplicate = app_client.post(
        f"{path}/result", json={**body, "result": "other"}, headers=as_token(token)
    )
    assert duplicate.json() == result.json()  # the first one wins
    assert execution.end() == "completed"
    task = app_client.get(f"/executions/{execution.id}").json()["tasks"][1]
    assert (task["key"], task["status"], task["result"]) == ("t", "succeeded", {"ok": [1, 2]})


def test_a_waiting_claim_wakes_when_a_task_is_sent(
    app_client: httpx.Client, running_service: ExecutionService
) -> None:
    token = new_token(app_client, "web")
    found: list[tuple[float, Any]] = []

    def poll() -> None:
        answer = claim(app_client, token, wait=10)
        found.append((time.monotonic(), answer.json()))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)  # the claim is waiting
    execution = Execution(running_service)
    wait_for(lambda: running_service.store.count_tasks_by_status(execution.id).get("sent") == 1)
    sent = time.monotonic()
    poller.join(15)
    ((answered, body),) = found
    assert [task["task_key"] for task in body["tasks"]] == ["t"]
    assert answered - sent < 1.5  # woken by the notification, not the 2 s re-check
    running_service.cancel(execution.id, "force")
    execution.end()


def test_a_claim_with_nothing_to_do_answers_empty_after_its_wait(app_client: httpx.Client) -> None:
    began = time.monotonic()
    answer = claim(app_client, ADMIN_TOKEN, wait=0.3)
    assert (answer.status_code, answer.json()) == (200, {"tasks": []})
    assert 0.25 < time.monotonic() - began < 3


# scopes ------------------------------------------------------------------------------------


def test_a_queue_token_serves_its_queue_only(
    app_client: httpx.Client, running_service: ExecutionService
) -> None:
    web, builds = new_token(app_client, "web"), new_token(app_client, "builds")
    execution = Execution(running_service)
    assignment = claim(app_client, web).json()["tasks"][0]
    path = f"/agents/attempts/{assignment['attempt_id']}"
    before = snapshot(running_service)
    refused = [
        claim(app_client, builds, queue="web"),
        app_client.post(f"{path}/started", json={"agent": "a1"}, headers=as_token(builds)),
        app_client.post(
            f"{path}/result",
            json={"agent": "a1", "outcome": "succeeded"},
            headers=as_token(builds),
        ),
        app_client.post(
            "/agents/heartbeat",
            json={"queue": "web", "agent": "a1", "host": "h", "pid": 1, "concurrency": 1},
            headers=as_token(builds),
        ),
        app_client.get("/agents", headers=as_token(web)),
        app_client.post("/agents/tokens", json={"queue": "web"}, headers=as_token(web)),
        app_client.get("/executions", headers=as_token(web)),
    ]
    assert [answer.status_code for answer in refused] == [403] * 7
    assert "queue:web" in error_of(refused[0])
    assert snapshot(running_service) == before  # refusals change nothing
    for token in (None, "not-a-token"):
        answer = claim(app_client, token or "")
        assert answer.status_code == 401
        error_of(answer)
    running_service.cancel(execution.id, "force")
    execution.end()


def test_only_a_hash_of_an_agent_token_is_stored(app_client: httpx.Client, store: Store) -> None:
    token = new_token(app_client, "web")
    path = store.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT token_hash, queue FROM tokens").fetchall()
    assert len(rows) == 1 and rows[0][1] == "web"
    assert token not in rows[0][0] and len(rows[0][0]) == 64


# refusals ----------------------------------------------------------------------------------


def test_started_and_result_refusals(
    app_client: httpx.Client, running_service: ExecutionService
) -> None:
    token = new_token(app_client, "web")
    execution = Execution(running_service)
    attempt = claim(app_client, token).json()["tasks"][0]["attempt_id"]
    path = f"/agents/attempts/{attempt}"

    def post(action: str, **body: Any) -> Any:
        return app_client.post(f"{path}/{action}", json=body, headers=as_token(token))

    unknown = app_client.post(
        "/agents/attempts/nope/started", json={"agent": "a1"}, headers=as_token(token)
    )
    assert unknown.status_code == 404 and "no such attempt" in error_of(unknown)
    unknown = app_client.post(
        "/agents/attempts/nope/result",
        json={"agent": "a1", "outcome": "failed"},
        headers=as_token(token),
    )
    assert unknown.status_code == 404
    early = post("result", agent="a1", outcome="succeeded")
    assert early.status_code == 409 and "not held" in error_of(early)
    other = post("started", agent="a2")
    assert other.status_code == 409 and "do not run it" in error_of(other)
    assert post("started", agent="a1").status_code == 200
    assert post("result", agent="a1", outcome="maybe").status_code == 422
    assert post("result", agent="a1", outcome="failed", recoverable="no").status_code == 422
    assert post("result", agent="a1", outcome="failed", extra=1).status_code == 422
    assert post("started").status_code == 422
    running_service.cancel(execution.id, "kill")
    assert execution.end() == "cancelled"
    killed = post("result", agent="a1", outcome="succeeded", result=1)
    assert killed.status_code == 409  # the attempt was killed: its result is refused
    beat = app_client.post(
        "/agents/heartbeat",
        json={
            "queue": "web", "agent": "a1", "host": "h", "pid": 1, "concurrency": 1,
            "attempts": [attempt],
        },
        headers=as_token(token),
    )  # fmt: skip
    assert beat.json()["kill"] == [attempt]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/agents/claim", {"queue": "web", "agent": "a", "limit": 0}),
        ("/agents/claim", {"queue": "web", "agent": "a", "limit": 101}),
        ("/agents/claim", {"queue": "web", "agent": "a", "wait": 31}),
        ("/agents/claim", {"queue": "web", "agent": "a", "wait": -1}),
        ("/agents/claim", {"queue": "", "agent": "a"}),
        ("/agents/claim", {"queue": "web", "agent": "a\n"}),
        ("/agents/claim", {"queue": "web"}),
        ("/agents/claim", {"queue": "web", "agent": "a", "other": 1}),
        ("/agents/heartbeat", {"queue": "web", "agent": "a", "host": "h", "pid": -1,
                               "concurrency": 1}),
        ("/agents/heartbeat", {"queue": "web", "agent": "a", "host": "h", "pid": 1,
                               "concurrency": 0}),
        ("/agents/tokens", {"queue": ""}),
        ("/agents/tokens", {}),
    ],
)  # fmt: skip
def test_malformed_bodies_are_refused_with_422(
    app_client: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    answer = app_client.post(path, json=body)
    assert answer.status_code == 422
    error_of(answer)


def test_a_body_that_is_not_json_is_refused_with_400(app_client: httpx.Client) -> None:
    answer = app_client.post(
        "/agents/claim", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert error_of(answer).startswith("malformed JSON body")


def test_the_document_and_the_server_agree_on_names_and_whole_numbers(
    app_client: httpx.Client,
) -> None:
    """The two cases issue 12 found: a name with a non-printable character (the document
    admitted it, the server refused it) and `pid: 4305208.0` (the other way round)."""
    document = app_client.get("/openapi.json").json()
    fields = document["components"]["schemas"]["HeartbeatRequest"]["properties"]
    name = re.compile(fields["agent"]["pattern"])
    assert fields["pid"]["type"] == "integer"  # JSON Schema's integer admits 4305208.0
    token = new_token(app_client, "web")

    def beat(**changes: Any) -> httpx.Response:
        body = {"queue": "web", "agent": "b", "host": "h", "pid": 2, "concurrency": 1}
        return app_client.post(
            "/agents/heartbeat", json={**body, **changes}, headers=as_token(token)
        )

    for refused in ("bell\x07", "zero\u200bwidth", "line\u2028break", "del\x7f"):
        assert name.search(refused) is None, refused
        assert beat(agent=refused).status_code == 422, refused
    assert name.search("web-1.example.com") is not None
    assert beat(agent="web-1.example.com").status_code == 200
    assert beat(pid=4305208.0).status_code == 200
    for not_whole in (4305208.5, True, "4305208"):
        assert beat(pid=not_whole).status_code == 422, not_whole


def test_a_new_token_lists_no_agent_until_it_beats(app_client: httpx.Client) -> None:
    assert app_client.get("/agents").json() == []
    token = new_token(app_client, "web")
    beat = app_client.post(
        "/agents/heartbeat",
        json={"queue": "web", "agent": "b", "host": "h", "pid": 2, "concurrency": 3},
        headers=as_token(token),
    )
    # idle (no attempt listed): asked to beat every third of the agent timeout (15 s)
    # a claim that waits in a long-poll counts as its beat (docs/agents.md)
    assert beat.json() == {"kill": [], "unknown": [], "interval": 5.0, "waiting_beats": True}
    (agent,) = app_client.get("/agents").json()
    assert (agent["name"], agent["queue"], agent["concurrency"], agent["running"]) == (
        "b",
        "web",
        3,
        [],
    )
    assert abs(agent["last_heartbeat_at"] - time.time()) < 5


def test_waiting_claims_hold_no_thread_of_the_server(app_client: httpx.Client) -> None:
    """60 agents long-poll an empty queue (more than the server's 40 worker threads): the
    other routes still answer at once."""
    token = new_token(app_client, "web")
    answers: list[int] = []

    def poll(index: int) -> None:
        with httpx.Client(base_url=str(app_client.base_url), timeout=30) as own:
            body = {"queue": "web", "agent": f"a{index}", "wait": 4}
            answers.append(
                own.post("/agents/claim", json=body, headers=as_token(token)).status_code
            )

    pollers = [threading.Thread(target=poll, args=(i,)) for i in range(60)]
    for poller in pollers:
        poller.start()
    time.sleep(1.0)  # every claim is waiting
    began = time.monotonic()
    listed = app_client.get("/executions")
    assert listed.status_code == 200
    assert time.monotonic() - began < 1.0
    for poller in pollers:
        poller.join(30)
    assert answers == [200] * 60


# the exchange's short way ----------------------------------------------------------------
# `POST /agents/exchange` with `Content-Type: application/json` (what agents send) is served
# by `LeanExchange`; any other JSON type goes the documented route's way. Both must answer
# alike, whatever the body.

SHORT = {"Content-Type": "application/json"}
ROUTE_ONLY = {"Content-Type": "application/vnd.dalsegno+json"}  # JSON, but not the short way


def both_ways(
    client: httpx.Client, body: bytes, token: str | None = None
) -> tuple[httpx.Response, httpx.Response]:
    auth = as_token(token) if token else {}
    short = client.post("/agents/exchange", content=body, headers={**auth, **SHORT})
    route = client.post("/agents/exchange", content=body, headers={**auth, **ROUTE_ONLY})
    return short, route


EXCHANGE = {"queue": "web", "agent": "a1", "claim_id": "claim_0001"}


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"[]",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"queue": "web", "agent": "a1"}).encode(),
        json.dumps({**EXCHANGE, "claim_id": "short"}).encode(),
        json.dumps({**EXCHANGE, "limit": 101}).encode(),
        json.dumps({**EXCHANGE, "limit": 1, "wait": "1"}).encode(),
        json.dumps({**EXCHANGE, "other": 1}).encode(),
        json.dumps({**EXCHANGE, "agent": "a\n"}).encode(),
        json.dumps({**EXCHANGE, "results": [{"attempt_id": "x", "outcome": "won"}]}).encode(),
        json.dumps({**EXCHANGE, "results": [{"outcome": "succeeded"}]}).encode(),
    ],
)
def test_a_refused_exchange_is_answered_alike_the_short_way_and_the_route_way(
    app_client: httpx.Client, body: bytes
) -> None:
    short, route = both_ways(app_client, body)
    assert short.status_code in (400, 422), short.text
    assert (short.status_code, short.json()) == (route.status_code, route.json())
    error_of(short)


def test_an_exchange_is_answered_alike_the_short_way_and_the_route_way(
    app_client: httpx.Client, running_service: ExecutionService
) -> None:
    token = new_token(app_client, "web")
    other = new_token(app_client, "db")
    nothing = json.dumps({**EXCHANGE, "limit": 0}).encode()
    short, route = both_ways(app_client, nothing, token)
    assert (short.status_code, short.json()) == (200, {"results": [], "tasks": []})
    assert (route.status_code, route.json()) == (200, {"results": [], "tasks": []})
    assert short.headers["content-security-policy"] == route.headers["content-security-policy"]
    short, route = both_ways(app_client, nothing, other)  # a token of another queue
    assert short.status_code == 403
    assert (short.status_code, short.json()) == (route.status_code, route.json())
    short, route = both_ways(app_client, nothing, "not-a-token")
    assert short.status_code == 401
    assert (short.status_code, short.json()) == (route.status_code, route.json())

    # a task claimed one way and delivered the other, both ways round
    for claim_way, deliver_way in ((SHORT, ROUTE_ONLY), (ROUTE_ONLY, SHORT)):
        execution = Execution(running_service)
        claimed = app_client.post(
            "/agents/exchange",
            json={**EXCHANGE, "limit": 1, "wait": 10, "claim_id": f"claim_{execution.id[:8]}"},
            headers={**as_token(token), **claim_way},
        )
        assert claimed.status_code == 200, claimed.text
        (assignment,) = claimed.json()["tasks"]
        assert (assignment["execution_id"], assignment["task_key"]) == (execution.id, "t")
        delivered = app_client.post(
            "/agents/exchange",
            json={
                **EXCHANGE,
                "claim_id": f"deliver_{execution.id[:8]}",
                "results": [
                    {
                        "attempt_id": assignment["attempt_id"],
                        "outcome": "succeeded",
                        "result": claim_way,
                    }
                ],
            },
            headers={**as_token(token), **deliver_way},
        )
        assert delivered.json() == {
            "results": [{"attempt_id": assignment["attempt_id"], "status": "accepted"}],
            "tasks": [],
        }
        assert execution.end() == "completed"
        task = app_client.get(f"/executions/{execution.id}").json()["tasks"][1]
        assert (task["status"], task["result"]) == ("succeeded", claim_way)


def test_an_exchange_body_over_its_limit_is_refused_the_short_way_too(
    app_client: httpx.Client,
) -> None:
    """Sent in chunks (no Content-Length), the body is refused once it passes the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"queue": "web", "agent": "a1", "claim_id": "claim_0001", "results": [], "x": "'
        for _ in range(17):
            yield b"y" * MIB
        yield b'"}'

    answer = app_client.post(
        "/agents/exchange", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert error_of(answer) == "the request body is too large: the limit is 16,777,216 bytes"


def test_agents_json_exchanges_take_the_short_way() -> None:
    app = create_app(mock.create_autospec(ExecutionService, instance=True), "unused")
    first = app.router.routes[0]

    def match(content_type: bytes, method: str = "POST") -> Match:
        scope = {
            "type": "http",
            "path": "/api/v1/agents/exchange",
            "method": method,
            "headers": [(b"content-type", content_type)],
        }
        return first.matches(scope)[0]

    assert match(b"application/json") is Match.FULL
    assert match(b"Application/JSON; charset=utf-8") is Match.FULL
    assert match(ROUTE_ONLY["Content-Type"].encode()) is Match.NONE
    assert match(b"application/json", "GET") is Match.NONE
