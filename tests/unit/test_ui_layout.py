"""The web UI's graph layout and session cookies, module by module."""

from __future__ import annotations

import time

import pytest
from starlette.requests import Request
from starlette.responses import Response

from dalsegno.model.states import TaskState
from dalsegno.service.reads import TaskRecord
from dalsegno.ui.layout import NODE_WIDTH, columns, lay_out
from dalsegno.ui.sessions import COOKIE, SessionCookies, csrf_matches


def task(task_id: int, key: str | None = None, status: str = "pending") -> TaskRecord:
    return TaskRecord(
        task_id, "e", "main", key or f"t{task_id}", "m:op", None, "{}", 0, 0.0, None,
        TaskState(status), 0, None, None, 0, None, None, None,
    )  # fmt: skip


def test_each_task_sits_in_the_column_of_its_longest_chain() -> None:
    # 1 -> 2 -> 4 and 1 -> 4 and 3 alone: 4 waits for 2, so it is in column 2, not 1.
    tasks = [task(i) for i in (1, 2, 3, 4)]
    edges = [(2, 1), (4, 2), (4, 1)]
    assert columns(tasks, edges) == [[1, 3], [2], [4]]


def test_arrows_point_right_and_boxes_do_not_overlap() -> None:
    tasks = [task(i) for i in range(1, 8)]
    edges = [(2, 1), (3, 1), (4, 2), (5, 3), (6, 4), (6, 5), (7, 6)]
    drawing = lay_out(tasks, edges)
    place = {node.task_id: (node.x, node.y) for node in drawing.nodes}
    for after, before in edges:
        assert place[after][0] >= place[before][0] + NODE_WIDTH
    assert len(set(place.values())) == len(tasks)
    assert len(drawing.arrows) == len(edges)
    assert all(node.x + NODE_WIDTH <= drawing.width for node in drawing.nodes)


def test_a_follower_is_placed_beside_what_it_depends_on() -> None:
    # two chains a1 -> a2 and b1 -> b2 whose tasks are stored interleaved in reverse
    tasks = [task(1, "a1"), task(2, "b1"), task(3, "b2"), task(4, "a2")]
    assert columns(tasks, [(4, 1), (3, 2)]) == [[1, 2], [4, 3]]


def test_a_long_key_is_cut_for_its_box_but_kept_whole() -> None:
    drawing = lay_out([task(1, "k" * 80)], [])
    [node] = drawing.nodes
    assert node.key == "k" * 80
    assert len(node.label) == 22
    assert node.label.endswith("…")


def test_a_cycle_never_hangs_the_layout() -> None:
    tasks = [task(1), task(2), task(3)]
    placed = [task_id for column in columns(tasks, [(1, 2), (2, 1), (3, 1)]) for task_id in column]
    assert sorted(placed) == [1, 2, 3]


def test_a_hundred_chains_of_a_hundred_make_a_hundred_columns() -> None:
    tasks = [task(i) for i in range(10_000)]
    edges = [(i, i - 100) for i in range(100, 10_000)]
    layers = columns(tasks, edges)
    assert len(layers) == 100
    assert all(len(layer) == 100 for layer in layers)


def request_with(cookie: str | None) -> Request:
    headers = [] if cookie is None else [(b"cookie", f"{COOKIE}={cookie}".encode())]
    scope = {"type": "http", "headers": headers, "scheme": "http", "path": "/", "server": None}
    return Request(scope)


def cookie_of(response: Response) -> str:
    header = response.headers["set-cookie"]
    assert "httponly" in header.lower()
    assert "samesite=lax" in header.lower()
    return header.split(";")[0].split("=", 1)[1].strip('"')


def test_a_session_reads_back_only_with_its_signature() -> None:
    cookies = SessionCookies("admin-token")
    session = cookies.new(signed_in=True)
    response = Response()
    cookies.write(response, session, request_with(None))
    value = cookie_of(response)
    assert cookies.read(request_with(value)) == session
    assert SessionCookies("another-admin-token").read(request_with(value)) is None
    payload, signature = value.split(".")
    assert cookies.read(request_with(f"{payload}x.{signature}")) is None
    assert cookies.read(request_with(f"{payload}.{signature[::-1]}")) is None
    assert cookies.read(request_with("garbage")) is None
    assert "admin-token" not in value


def test_an_expired_session_is_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    cookies = SessionCookies("admin-token")
    response = Response()
    cookies.write(response, cookies.new(signed_in=True), request_with(None))
    value = cookie_of(response)
    later = time.time() + 13 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert cookies.read(request_with(value)) is None


def test_csrf_tokens_must_match_exactly() -> None:
    session = SessionCookies("s").new(signed_in=True)
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, session.csrf + "x")


def test_a_tall_column_wraps_and_its_followers_stay_to_the_right() -> None:
    # root -> 100 tasks -> sink: the middle column wraps into 3 of at most 40 rows
    tasks = [task(i) for i in range(102)]
    edges = [(i, 0) for i in range(1, 101)] + [(101, i) for i in range(1, 101)]
    drawing = lay_out(tasks, edges)
    xs = {node.task_id: node.x for node in drawing.nodes}
    assert len({xs[i] for i in range(1, 101)}) == 3
    assert max(node.y for node in drawing.nodes) < 40 * 42 + 12
    assert all(xs[101] > xs[i] for i in range(101))
    assert all(xs[i] > xs[0] for i in range(1, 102))
