"""Bearer tokens: 401 without a known token, 403 for a token without the scope, and the
OpenAPI document (public: it holds no data) that declares them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.conftest import ADMIN_TOKEN, AGENT_TOKEN, LiveApi, ref, snapshot
from dalsegno.api import auth
from dalsegno.api.auth import ADMIN, TokenChecker
from dalsegno.model.access import Caller, Role

ROUTES = [
    ("GET", "/executions", None),
    ("POST", "/executions", {"workflow": "x:f"}),
    ("GET", "/executions/{failed}", None),
    ("GET", "/executions/{failed}/events", None),
    ("POST", "/executions/{failed}/resume", {}),
    ("POST", "/executions/{failed}/resume", {"dry_run": True}),
    ("POST", "/executions/{failed}/cancel", {"mode": "kill"}),
]


def assert_refused(live: LiveApi, answer: httpx.Response, status: int, before: Any) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert "\n" not in body["error"]
    assert snapshot(live.service) == before
    assert live.changes == []
    return str(body["error"])


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_without_a_token_is_401(
    live: LiveApi, ended: dict[str, str], method: str, path: str, body: Any
) -> None:
    before = snapshot(live.service)
    with live.client(token=None) as client:
        answer = client.request(method, path.format(**ended), json=body)

    reason = assert_refused(live, answer, 401, before)
    assert "Authorization: Bearer" in reason
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        f"Basic {ADMIN_TOKEN}",
        f"Token {ADMIN_TOKEN}",
        f"{ADMIN_TOKEN}",
        "Bearer wrong-token",
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        f"Bearer {ADMIN_TOKEN.upper()}",
        "Bearer \u00e9t\u00e9".encode(),  # not ASCII: the server reads it as Latin-1
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), [ROUTES[0], ROUTES[1], ROUTES[6]])
def test_a_wrong_token_is_401(
    live: LiveApi,
    ended: dict[str, str],
    authorization: str | bytes,
    method: str,
    path: str,
    body: Any,
) -> None:
    before = snapshot(live.service)
    with live.client(token=None) as client:
        answer = client.request(
            method, path.format(**ended), json=body, headers={"Authorization": authorization}
        )

    assert_refused(live, answer, 401, before)
    assert answer.headers["www-authenticate"] == "Bearer"


def test_the_token_is_checked_before_the_body_is_read(live: LiveApi, ended: dict[str, str]) -> None:
    before = snapshot(live.service)
    with live.client(token="wrong") as client:
        broken = client.post(
            "/executions", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        unknown_path = client.get("/no-such-path")

    assert_refused(live, broken, 401, before)
    assert_refused(live, unknown_path, 401, before)


def test_scheme_is_case_insensitive(live: LiveApi) -> None:
    with live.client(token=None) as client:
        answer = client.get("/executions", headers={"Authorization": f"bearer {ADMIN_TOKEN}"})

    assert answer.status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_an_agent_token_may_not_use_the_execution_endpoints(
    live: LiveApi, ended: dict[str, str], method: str, path: str, body: Any
) -> None:
    before = snapshot(live.service)
    with live.client(token=AGENT_TOKEN) as client:
        answer = client.request(method, path.format(**ended), json=body)

    reason = assert_refused(live, answer, 403, before)
    assert "admin token" in reason


def test_tokens_are_compared_in_constant_time(
    live: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin token goes through `tokens.same_token` (hmac.compare_digest)."""
    compared: list[tuple[str, str]] = []
    original = auth.same_token

    def spy(given: str, expected: str) -> bool:
        compared.append((given, expected))
        return original(given, expected)

    monkeypatch.setattr(auth, "same_token", spy)
    with live.client() as client:
        assert client.get("/executions").status_code == 200
    with live.client(token="guess") as client:
        assert client.get("/executions").status_code == 401

    assert (ADMIN_TOKEN, ADMIN_TOKEN) in compared
    assert ("guess", ADMIN_TOKEN) in compared


def test_token_checker_scopes() -> None:
    agents = {
        "agent-a": Caller("agent-a", Role.AGENT, "builds"),
        "viewer-b": Caller("viewer-b", Role.VIEWER),
    }
    checker = TokenChecker("admin", agents.get)

    assert checker.scopes_of("admin") == {ADMIN, "read", "operate", "manage"}
    assert checker.scopes_of("agent-a") == {"queue:builds"}
    assert checker.scopes_of("viewer-b") == {"read"}
    assert checker.scopes_of("nobody") is None
    assert TokenChecker("admin").scopes_of("agent-a") is None
    assert checker.caller_of("admin") == Caller("admin", Role.ADMIN)
    with pytest.raises(ValueError, match="empty"):
        TokenChecker("")


# the OpenAPI document -------------------------------------------------------------------


def test_openapi_document_is_public_and_declares_the_contract(live: LiveApi) -> None:
    answer = httpx.get(f"{live.url}/api/v1/openapi.json")

    assert answer.status_code == 200
    document = answer.json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == {
        ("POST", "/api/v1/executions"),
        ("GET", "/api/v1/executions"),
        ("GET", "/api/v1/executions/{execution_id}"),
        ("POST", "/api/v1/executions/{execution_id}/resume"),
        ("POST", "/api/v1/executions/{execution_id}/cancel"),
        ("GET", "/api/v1/executions/{execution_id}/events"),
        ("GET", "/api/v1/executions/{execution_id}/tasks"),
        ("DELETE", "/api/v1/executions/{execution_id}"),
        ("POST", "/api/v1/housekeeping/purge"),
        ("GET", "/api/v1/executions/{execution_id}/tasks/{task}"),
        ("POST", "/api/v1/agents/exchange"),
        ("POST", "/api/v1/agents/claim"),
        ("POST", "/api/v1/agents/attempts/{attempt_id}/started"),
        ("POST", "/api/v1/agents/attempts/{attempt_id}/result"),
        ("POST", "/api/v1/agents/heartbeat"),
        ("GET", "/api/v1/agents"),
        ("POST", "/api/v1/agents/tokens"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/{name}"),
        ("GET", "/api/v1/workflows"),
        ("POST", "/api/v1/blueprints"),
        ("GET", "/api/v1/blueprints"),
        ("GET", "/api/v1/blueprints/{blueprint_id}"),
        ("DELETE", "/api/v1/blueprints/{blueprint_id}"),
        ("POST", "/api/v1/deployments"),
        ("GET", "/api/v1/deployments"),
        ("GET", "/api/v1/deployments/{deployment_id}"),
        ("DELETE", "/api/v1/deployments/{deployment_id}"),
    }
    error = {"$ref": "#/components/schemas/Error"}
    for key, operation in operations.items():
        assert operation["security"] == [{"bearerAuth": []}], key
        responses = operation["responses"]
        for code in ("401", "403", "422"):
            assert responses[code]["content"]["application/json"]["schema"] == error, key
        if "{execution_id}" in key[1]:
            assert "404" in responses, key
    created = operations[("POST", "/api/v1/executions")]["responses"]
    assert "201" in created
    for action in ("resume", "cancel"):
        answers = operations[("POST", f"/api/v1/executions/{{execution_id}}/{action}")]
        assert {"202", "409"} <= set(answers["responses"]), action


def test_docs_page_is_served_and_the_root_is_the_web_ui(live: LiveApi) -> None:
    docs = httpx.get(f"{live.url}/api/v1/docs")
    root = httpx.get(f"{live.url}/")

    assert docs.status_code == 200
    assert "/api/v1/openapi.json" in docs.text
    assert root.status_code == 303  # the web UI: its sign-in page first
    assert root.headers["location"].startswith("/login")
    paths = httpx.get(f"{live.url}/api/v1/openapi.json").json()["paths"]
    assert all(path.startswith("/api/v1/") for path in paths)  # the UI is not in the API


def test_start_still_works_with_the_admin_token(live: LiveApi) -> None:
    with live.client() as client:
        answer = client.post("/executions", json={"workflow": ref("deploy")})

    assert answer.status_code == 201
    assert len(live.changes) == 1
