"""Refused requests: the status docs/interface.md gives, `{"error": "one line"}`, nothing changed.

"Nothing changed" is checked on the store (executions, tasks, leases, attempts, events)
and on the manager's wake-ups: a refused request wakes nobody.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.conftest import LiveApi, ref, snapshot
from dalsegno.service.executions import ExecutionService

UNKNOWN = "no-such-execution"


def refused(
    live: LiveApi,
    client: httpx.Client,
    status: int,
    method: str,
    path: str,
    **request: Any,
) -> str:
    """Send a request that must be refused with `status`; returns its one-line reason."""
    before = snapshot(live.service)
    changes = len(live.changes)

    answer = client.request(method, path, **request)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error"}
    reason = body["error"]
    assert isinstance(reason, str)
    assert reason.strip()
    assert "\n" not in reason
    assert "Traceback" not in reason
    assert snapshot(live.service) == before
    assert len(live.changes) == changes
    return reason


# 404: unknown executions and paths ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/executions/{UNKNOWN}", None),
        ("GET", f"/executions/{UNKNOWN}/events", None),
        ("POST", f"/executions/{UNKNOWN}/resume", {}),
        ("POST", f"/executions/{UNKNOWN}/resume", {"dry_run": True}),
        ("POST", f"/executions/{UNKNOWN}/cancel", {"mode": "kill"}),
    ],
)
def test_unknown_execution_is_404(
    live: LiveApi,
    client: httpx.Client,
    ended: dict[str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    reason = refused(live, client, 404, method, path, json=body)

    assert UNKNOWN in reason


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nothing-here"), ("GET", "/executions/x/y/z"), ("POST", "/"), ("GET", "")],
)
def test_unknown_path_under_the_api_is_a_json_404(
    live: LiveApi, client: httpx.Client, method: str, path: str
) -> None:
    reason = refused(live, client, 404, method, path)

    assert "/api/v1" in reason


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/executions", "GET, POST"),
        ("PUT", "/executions/x", "GET, DELETE"),
        ("GET", "/executions/x/resume", "POST"),
    ],
)
def test_wrong_method_is_a_json_405_that_names_the_allowed_ones(
    live: LiveApi, client: httpx.Client, method: str, path: str, allowed: str
) -> None:
    before = len(live.changes)
    answer = client.request(method, path)

    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.json() == {
        "error": f"{method} is not allowed here: use {allowed.replace(', ', ' or ')}"
    }
    assert len(live.changes) == before


# 409: what the execution's state does not allow ---------------------------------------


@pytest.mark.parametrize(
    ("which", "action", "body", "expected"),
    [
        ("completed", "resume", {}, "is completed"),
        ("completed", "resume", {"dry_run": True}, "is completed"),
        ("completed", "cancel", {}, "is completed"),
        ("completed", "cancel", {"mode": "force"}, "is completed"),
        ("failed", "cancel", {"mode": "kill"}, "is failed"),
    ],
)
def test_transition_the_state_does_not_allow_is_409(
    live: LiveApi,
    client: httpx.Client,
    ended: dict[str, str],
    which: str,
    action: str,
    body: dict[str, Any],
    expected: str,
) -> None:
    path = f"/executions/{ended[which]}/{action}"

    reason = refused(live, client, 409, "POST", path, json=body)

    assert expected in reason
    assert ended[which] in reason


def test_resume_of_a_pending_execution_is_409(
    live: LiveApi, client: httpx.Client, ended: dict[str, str]
) -> None:
    pending = client.post("/executions", json={"workflow": ref("deploy")}).json()["id"]

    reason = refused(live, client, 409, "POST", f"/executions/{pending}/resume", json={})

    assert "waits for a manager" in reason


def test_cancel_of_a_cancelled_execution_is_409(
    live: LiveApi, client: httpx.Client, ended: dict[str, str]
) -> None:
    pending = client.post("/executions", json={"workflow": ref("deploy")}).json()["id"]
    assert client.post(f"/executions/{pending}/cancel", json={}).status_code == 202

    reason = refused(live, client, 409, "POST", f"/executions/{pending}/cancel", json={})

    assert "is cancelled" in reason


# 422: requests the service refuses ------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ({"workflow": "no_such_module_for_dalsegno:deploy"}, "no_such_module_for_dalsegno"),
        ({"workflow": "no_such_file.py:deploy"}, "no such workflow file"),
        ({"workflow": ref("no_such_function")}, "no_such_function"),
        ({"workflow": ref("not_a_workflow")}, "not a workflow"),
        ({"workflow": "no colon"}, "malformed reference"),
        ({"workflow": "   "}, "workflow reference is required"),
        ({"workflow": ref("deploy"), "params": {"nope": 1}}, "nope"),
        ({"workflow": ref("params")}, "name"),
        ({"workflow": ref("deploy"), "lock": " "}, "lock"),
        ({"workflow": ref("deploy"), "lock": "x" * 300}, "lock key"),
    ],
)
def test_start_the_service_refuses_is_422(
    live: LiveApi,
    client: httpx.Client,
    ended: dict[str, str],
    start: dict[str, Any],
    expected: str,
) -> None:
    reason = refused(live, client, 422, "POST", "/executions", json=start)

    assert expected in reason


def test_params_that_are_not_json_numbers_are_422(
    live: LiveApi, client: httpx.Client, ended: dict[str, str]
) -> None:
    body = json.dumps({"workflow": ref("deploy"), "params": {"hosts": "NAN"}})
    body = body.replace('"NAN"', "NaN")  # Python's JSON reads NaN; the service refuses it

    reason = refused(
        live,
        client,
        422,
        "POST",
        "/executions",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert "params" in reason


def test_events_after_a_malformed_event_id_is_422(
    live: LiveApi, client: httpx.Client, ended: dict[str, str]
) -> None:
    path = f"/executions/{ended['failed']}/events"

    for after in ["abc", "-1", "²", "9" * 40, ""]:
        reason = refused(live, client, 422, "GET", path, params={"after": after})
        assert "after" in reason


def test_blank_execution_id_is_422(live: LiveApi, client: httpx.Client) -> None:
    reason = refused(live, client, 422, "GET", "/executions/%20%20")

    assert "execution id" in reason


# 422 and 400: malformed requests ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/executions", {}, "workflow"),
        ("/executions", {"workflow": 7}, "workflow"),
        ("/executions", {"workflow": "a\u0000/b.py:f"}, "workflow"),
        ("/executions", {"workflow": "x:f", "params": []}, "params"),
        ("/executions", {"workflow": "x:f", "params": None}, "params"),
        ("/executions", {"workflow": "x:f", "surprise": 1}, "surprise"),
        ("/executions", [], "body"),
        ("/executions", "deploy.py:deploy", "body"),
        ("/executions/{failed}/resume", {"dry_run": "yes"}, "dry_run"),
        ("/executions/{failed}/resume", {"reset_operations": 1}, "reset_operations"),
        ("/executions/{failed}/resume", {"reset": True}, "reset"),
        ("/executions/{failed}/cancel", {"mode": "gently"}, "mode"),
        ("/executions/{failed}/cancel", {"mode": None}, "mode"),
        ("/executions/{failed}/cancel", [1, 2], "body"),
    ],
)
def test_malformed_body_is_422(
    live: LiveApi,
    client: httpx.Client,
    ended: dict[str, str],
    path: str,
    body: Any,
    expected: str,
) -> None:
    reason = refused(live, client, 422, "POST", path.format(**ended), json=body)

    assert expected in reason


def test_unknown_status_filter_is_422(
    live: LiveApi, client: httpx.Client, ended: dict[str, str]
) -> None:
    reason = refused(live, client, 422, "GET", "/executions", params={"status": "sleeping"})

    assert "status" in reason


@pytest.mark.parametrize(
    ("path", "content", "content_type"),
    [
        ("/executions", b'{"workflow": ', "application/json"),
        ("/executions", b"\xff\xfe not utf-8", "application/json"),
        ("/executions/{failed}/resume", b"{dry_run: true}", "application/json"),
        ("/executions/{failed}/cancel", b"{'mode': 'kill'}", "application/json"),
        ("/executions", b'{"workflow": "deploy.py:deploy"}', "text/plain"),
        ("/executions/{failed}/cancel", b"mode=kill", "application/x-www-form-urlencoded"),
        ("/executions", b'{"workflow": "x:f", "params": {"n": 1%s}}' % (b"0" * 5000), None),
    ],
)
def test_body_that_is_not_json_is_400(
    live: LiveApi,
    client: httpx.Client,
    ended: dict[str, str],
    path: str,
    content: bytes,
    content_type: str | None,
) -> None:
    headers = {"Content-Type": content_type or "application/json"}

    refused(live, client, 400, "POST", path.format(**ended), content=content, headers=headers)


def test_broken_json_says_where(live: LiveApi, client: httpx.Client) -> None:
    reason = refused(
        live,
        client,
        400,
        "POST",
        "/executions",
        content=b'{"workflow": }',
        headers={"Content-Type": "application/json"},
    )

    assert reason == "malformed JSON body: Expecting value at character 13"


# what JSON can spell but UTF-8 cannot ------------------------------------------------------


def test_lone_surrogates_in_params_are_stored_and_answered_escaped(
    live: LiveApi, client: httpx.Client, service: ExecutionService
) -> None:
    params = {"name": "\ud800", "extra": "caf\u00e9"}
    body = json.dumps({"workflow": ref("params"), "params": params})  # spells \\ud800

    answer = client.post("/executions", content=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 201, answer.text
    assert b"\\ud800" in answer.content
    created = answer.json()
    assert created["params"] == {"name": "\ud800", "extra": "café"}
    assert client.get(f"/executions/{created['id']}").json()["params"] == created["params"]


def test_lone_surrogate_in_a_reference_or_lock_is_refused(
    live: LiveApi, client: httpx.Client
) -> None:
    for body in [
        json.dumps({"workflow": "\ud800:f"}),
        json.dumps({"workflow": ref("deploy"), "lock": "\udc00"}),
    ]:
        refused(
            live,
            client,
            422,
            "POST",
            "/executions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
