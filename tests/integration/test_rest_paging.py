"""Paging in the REST API, on a real HTTP server over each backend: `limit` and an opaque
`cursor` on executions, tasks and events; the next page's cursor in `X-Next-Cursor` and
`Link`; a cursor walks 10,000 events with no duplicate and no gap while new ones arrive;
unknown query parameters and foreign cursors are refused with 422."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from acceptance.test_cli_remote import ServerThread
from conftest import WORKFLOWS
from dalsegno.api.app import create_app
from dalsegno.service.executions import ExecutionService

TOKEN = "paging-test-token"
READS = WORKFLOWS / "reads.py"


def ref(name: str) -> str:
    return f"{READS}:{name}"


@pytest.fixture
def api(service: ExecutionService) -> Iterator[httpx.Client]:
    with ServerThread(create_app(service, TOKEN)) as server, httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ) as client:
        yield client


def walk(api: httpx.Client, path: str, **query: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row of a list, page after page; and how many pages it took."""
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        answer = api.get(path, params=query)
        assert answer.status_code == 200, answer.text
        pages += 1
        rows.extend(answer.json())
        if "link" not in answer.headers:
            return rows, pages
        assert answer.headers["link"].endswith('>; rel="next"')
        query["cursor"] = answer.headers["x-next-cursor"]


def test_a_cursor_walks_10000_events_with_no_duplicate_and_no_gap_while_new_ones_arrive(
    api: httpx.Client, service: ExecutionService
) -> None:
    started: list[str] = []
    runner = threading.Thread(
        target=lambda: started.append(
            service.start(
                ref("chatty"),
                {"tasks": 20, "lines": 500, "pause": 0.02},
                on_created=started.append,
            ).execution_id
        ),
        daemon=True,
    )
    runner.start()
    deadline = time.monotonic() + 30
    while not started:
        assert time.monotonic() < deadline, "the execution was not created"
        time.sleep(0.01)
    execution_id = started[0]
    seen: list[int] = []
    query: dict[str, Any] = {"limit": 500}
    read_while_running = 0
    deadline = time.monotonic() + 240
    while True:
        running = runner.is_alive()
        answer = api.get(f"/executions/{execution_id}/events", params=query)
        assert answer.status_code == 200, answer.text
        page = [int(event["id"]) for event in answer.json()]
        seen.extend(page)
        if page and running:
            read_while_running += 1
        if "x-next-cursor" in answer.headers:
            query["cursor"] = answer.headers["x-next-cursor"]
        if not page and not running:
            break  # everything was committed before the run ended: this page was the last
        if len(page) < 500:
            time.sleep(0.05)
        assert time.monotonic() < deadline, "the walk did not end"
    runner.join(10)
    stored = [int(event.id) for event in service.events(execution_id)]
    assert len(stored) > 10_000
    assert read_while_running >= 5, "the walk did not overlap the writes"
    assert len(seen) == len(set(seen)), "an event came twice"
    assert seen == sorted(seen), "events came out of order"
    assert seen == stored, "an event was skipped"


def test_executions_page_newest_first_and_later_ones_do_not_shift_the_pages(
    api: httpx.Client, service: ExecutionService
) -> None:
    made = [service.create(ref("many"), {"n": 1}).id for _ in range(25)]
    first = api.get("/executions", params={"limit": 10})
    assert first.status_code == 200
    assert [e["id"] for e in first.json()] == list(reversed(made))[:10]
    assert set(first.json()[0]) >= {"id", "workflow", "status", "params", "created_at"}
    for _ in range(3):  # created while a person pages: newer than every page read
        service.create(ref("many"), {"n": 1})
    rest, pages = walk(api, "/executions", limit=10, cursor=first.headers["x-next-cursor"])
    assert pages == 2
    assert [e["id"] for e in first.json() + rest] == list(reversed(made))
    assert "link" not in api.get("/executions", params={"limit": 100}).headers


def test_executions_filters(api: httpx.Client, service: ExecutionService) -> None:
    completed = service.start(ref("many"), {"n": 1}).execution_id
    failed = service.start(ref("flaky")).execution_id
    pending = service.create(ref("many"), {"n": 1}).id

    def ids(**query: Any) -> list[str]:
        answer = api.get("/executions", params=query)
        assert answer.status_code == 200, answer.text
        return [e["id"] for e in answer.json()]

    assert ids(status="failed") == [failed]
    assert ids(status=["failed", "pending"]) == [pending, failed]
    assert ids(status="failed,completed") == [failed, completed]
    assert ids(workflow=ref("many")) == [pending, completed]
    assert ids(q=failed[:5]) == [failed]
    assert ids(q="reads.py:flak") == [failed]
    assert ids(q="%") == []  # a wildcard is a character, not a pattern
    assert ids(since="1h") == [pending, failed, completed]
    assert ids(since="2999-01-01T00:00:00+00:00") == []


def test_tasks_page_in_stored_order_without_results(
    api: httpx.Client, service: ExecutionService
) -> None:
    execution_id = service.start(ref("many"), {"n": 2500}).execution_id
    tasks, pages = walk(api, f"/executions/{execution_id}/tasks", limit=1000)
    assert pages == 3
    assert [t["key"] for t in tasks] == [f"t{i:05d}" for i in range(2500)]
    assert all("result" not in task and "kwargs" not in task for task in tasks)
    assert {t["status"] for t in tasks} == {"succeeded"}
    matching = api.get(f"/executions/{execution_id}/tasks", params={"key": "t0249"}).json()
    assert [t["key"] for t in matching] == [f"t0249{i}" for i in range(10)]
    none = api.get(f"/executions/{execution_id}/tasks", params={"status": "failed"}).json()
    assert none == []
    # the execution itself, with only the tasks asked for
    some = api.get(f"/executions/{execution_id}", params={"limit": 3}).json()
    assert [t["key"] for t in some["tasks"]] == ["t00000", "t00001", "t00002"]


def test_a_task_with_its_attempts_by_key(api: httpx.Client, service: ExecutionService) -> None:
    execution_id = service.start(ref("flaky")).execution_id
    build = api.get(f"/executions/{execution_id}/tasks/build", params={"graph": "main"})
    assert build.status_code == 200, build.text
    found = build.json()
    assert [a["outcome"] for a in found["attempts"]] == ["failed", "failed", "succeeded"]
    assert found["attempts"][0]["number"] == 1
    assert "Traceback" in found["attempts"][0]["error"]
    assert found["result"] == {"objects": 42}
    assert found["kwargs"] == {"fail_times": 2}
    ambiguous = api.get(f"/executions/{execution_id}/tasks/build")
    assert ambiguous.status_code == 422
    assert "name one with its graph" in ambiguous.json()["error"]
    unknown = api.get(f"/executions/{execution_id}/tasks/nothing")
    assert unknown.status_code == 404
    by_id = api.get(f"/executions/{execution_id}/tasks/{found['id']}")
    assert by_id.json()["key"] == "build" and by_id.json()["graph"] == "main"


@pytest.mark.parametrize(
    ("path", "query", "reason"),
    [
        ("/executions", {"statuss": "failed"}, "unknown query parameter 'statuss'"),
        ("/executions", {"limit": "5000"}, "limit"),
        ("/executions", {"cursor": "bm90LWEtY3Vyc29y"}, "malformed cursor"),
        ("/executions", {"since": "tomorrow"}, "a time is an age"),
        ("/executions/ID/events", {"page": "2"}, "unknown query parameter 'page'"),
        ("/executions/ID/events", {"level": "loud"}, "level"),
        ("/executions/ID/tasks", {"offset": "10"}, "unknown query parameter 'offset'"),
        ("/executions/ID", {"verbose": "1"}, "unknown query parameter 'verbose'"),
    ],
)
def test_malformed_paging_requests_answer_422(
    api: httpx.Client, service: ExecutionService, path: str, query: dict[str, str], reason: str
) -> None:
    execution_id = service.start(ref("many"), {"n": 1}).execution_id
    answer = api.get(path.replace("ID", execution_id), params=query)
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["error"]


def test_a_cursor_of_one_list_is_refused_by_another(
    api: httpx.Client, service: ExecutionService
) -> None:
    execution_id = service.start(ref("many"), {"n": 3}).execution_id
    tasks = api.get(f"/executions/{execution_id}/tasks", params={"limit": 1})
    cursor = tasks.headers["x-next-cursor"]
    events = api.get(f"/executions/{execution_id}/events", params={"cursor": cursor})
    assert events.status_code == 422
    assert "malformed cursor" in events.json()["error"]
