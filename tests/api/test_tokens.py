"""People's tokens over REST: an admin makes, lists and revokes them; each role may do what
docs/security.md says; every start, resume and cancel records who asked for it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import httpx

from api.conftest import ADMIN_TOKEN, LiveApi, ref, snapshot
from dalsegno.service.executions import ExecutionService


def make_token(live: LiveApi, name: str, role: str, **extra: Any) -> str:
    with live.client() as admin:
        answer = admin.post("/tokens", json={"name": name, "role": role, **extra})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["name"] == name and body["role"] == role and body["created_by"] == "admin"
    return str(body["token"])


def test_an_admin_makes_lists_and_revokes_tokens(live: LiveApi) -> None:
    secret = make_token(live, "alice", "operator")
    make_token(live, "bob", "viewer")

    with live.client() as admin:
        listed = admin.get("/tokens").json()
        assert [(t["name"], t["role"]) for t in listed] == [
            ("alice", "operator"),
            ("bob", "viewer"),
        ]
        assert all("token" not in t for t in listed)  # never a secret again
        revoked = admin.delete("/tokens/alice")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_by"] == "admin"
        assert [t["name"] for t in admin.get("/tokens").json()] == ["bob"]
        everything = admin.get("/tokens", params={"revoked": "true"}).json()
        assert {t["name"]: t["revoked_at"] is not None for t in everything} == {
            "alice": True,
            "bob": False,
        }
        again = admin.delete("/tokens/alice")
        assert again.status_code == 404
        assert "no such token" in again.json()["error"]
    with live.client(secret) as alice:
        answer = alice.get("/executions")
    assert answer.status_code == 401  # revoked: refused from the next request on
    assert "revoked" in answer.json()["error"]


def test_the_store_keeps_only_a_hash(live: LiveApi) -> None:
    secret = make_token(live, "carol", "admin")
    path = live.service.store.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT * FROM tokens").fetchall()
    assert len(rows) == 1
    assert not any(secret in str(value) for value in rows[0])


def test_a_name_is_unique_among_active_tokens_and_free_again_once_revoked(live: LiveApi) -> None:
    make_token(live, "dave", "viewer")
    with live.client() as admin:
        twice = admin.post("/tokens", json={"name": "dave", "role": "operator"})
        assert twice.status_code == 409
        assert admin.delete("/tokens/dave").status_code == 200
    make_token(live, "dave", "operator")


def test_malformed_token_requests_are_refused(live: LiveApi) -> None:
    before = snapshot(live.service)
    bodies = [
        {"name": "admin", "role": "viewer"},  # the admin token's actor
        {"name": "a b", "role": "viewer"},
        {"name": "", "role": "viewer"},
        {"name": "x" * 65, "role": "viewer"},
        {"name": "eve", "role": "root"},
        {"name": "eve", "role": "agent"},  # an agent token needs its queue
        {"name": "eve", "role": "viewer", "queue": "web"},  # only an agent token has one
        {"name": "eve", "role": "agent", "queue": "a\u202eb"},
    ]
    with live.client() as admin:
        answers = [admin.post("/tokens", json=body) for body in bodies]
        assert [a.status_code for a in answers] == [422] * len(bodies), [a.text for a in answers]
        assert admin.get("/tokens").json() == []
    assert snapshot(live.service) == before


def test_roles_on_the_execution_routes(live: LiveApi, ended: dict[str, str]) -> None:
    viewer = make_token(live, "vic", "viewer")
    operator = make_token(live, "olga", "operator")
    failed = ended["failed"]
    with live.client(viewer) as client:
        assert client.get("/executions").status_code == 200
        assert client.get(f"/executions/{failed}/events").status_code == 200
        refused = client.post("/executions", json={"workflow": ref("deploy")})
        assert refused.status_code == 403
        assert "operator role" in refused.json()["error"]
        assert client.post(f"/executions/{failed}/cancel", json={}).status_code == 403
        assert client.get("/tokens").status_code == 403
        assert client.get("/agents").status_code == 200
    with live.client(operator) as client:
        assert client.post("/executions", json={"workflow": ref("deploy")}).status_code == 201
        assert client.get("/tokens").status_code == 403
        made = client.post("/tokens", json={"name": "x", "role": "admin"})
        assert made.status_code == 403  # an operator cannot make itself an admin
        assert "admin role" in made.json()["error"]
        assert client.post("/agents/tokens", json={"queue": "web"}).status_code == 403


def test_every_change_records_its_actor(live: LiveApi, service: ExecutionService) -> None:
    operator = make_token(live, "olga", "operator")
    with live.client(operator) as client:
        created = client.post("/executions", json={"workflow": ref("deploy")}).json()
        cancelled = client.post(f"/executions/{created['id']}/cancel", json={})
        assert cancelled.status_code == 202
        found = client.get(f"/executions/{created['id']}").json()
        events = client.get(f"/executions/{created['id']}/events").json()
    assert [(a["type"], a["actor"]) for a in found["actions"]] == [
        ("workflow_started", "olga"),
        ("cancel_requested", "olga"),
    ]
    by_type = {event["type"]: event["actor"] for event in events}
    assert by_type["workflow_started"] == "olga"
    assert by_type["cancel_requested"] == "olga"
    assert by_type["workflow_cancelled"] is None  # the engine's consequence, not a request


def test_a_resume_records_the_admin_token_as_admin(live: LiveApi, ended: dict[str, str]) -> None:
    with live.client() as admin:
        answer = admin.post(f"/executions/{ended['failed']}/resume", json={})
        assert answer.status_code == 202
        actions = admin.get(f"/executions/{ended['failed']}").json()["actions"]
    resumed = [a for a in actions if a["type"] == "workflow_resumed"]
    assert [a["actor"] for a in resumed] == ["admin"]


def test_agent_tokens_are_listed_and_revoked_like_the_others(live: LiveApi) -> None:
    with live.client() as admin:
        made = admin.post("/agents/tokens", json={"queue": "web", "name": "web-1"}).json()
        assert made["name"] == "web-1" and made["queue"] == "web"
        (listed,) = admin.get("/tokens").json()
        assert (listed["name"], listed["role"], listed["queue"]) == ("web-1", "agent", "web")
    heartbeat = {"queue": "web", "agent": "a1", "host": "h", "pid": 1, "concurrency": 1}
    with httpx.Client(base_url=f"{live.url}/api/v1") as raw:
        auth = {"Authorization": f"Bearer {made['token']}"}
        assert raw.post("/agents/heartbeat", json=heartbeat, headers=auth).status_code == 200
        assert raw.get("/executions", headers=auth).status_code == 403
        admin_auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert raw.delete("/tokens/web-1", headers=admin_auth).status_code == 200
        assert raw.post("/agents/heartbeat", json=heartbeat, headers=auth).status_code == 401
