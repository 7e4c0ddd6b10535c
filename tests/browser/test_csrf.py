"""Plain HTTP against the real manager: every state-changing POST needs the session's CSRF
token (else 403, nothing changed), and a forged or missing session cookie signs nobody in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from browser.conftest import LiveManager, ref


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@contextmanager
def signed_in(manager: LiveManager) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=manager.url, follow_redirects=False) as client:
        form = client.get("/login")
        answer = client.post("/login", data={"token": manager.token, "csrf": csrf_of(form.text)})
        assert answer.status_code == 303, answer.text
        assert client.get("/").status_code == 200
        yield client


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    manager: LiveManager, csrf: str | None
) -> None:
    execution_id = manager.start("slow", steps=40, seconds=0.25)
    manager.wait_status(execution_id, "started")
    extra = {} if csrf is None else {"csrf": csrf}
    with signed_in(manager) as client:
        cancel = client.post(f"/executions/{execution_id}/cancel", data={"mode": "kill", **extra})
        start = client.post("/start", data={"workflow": ref("slow"), "params": "{}", **extra})
        out = client.post("/logout", data=extra)
        still_signed_in = client.get("/").status_code
    assert (cancel.status_code, start.status_code, out.status_code) == (403, 403, 403)
    assert "CSRF" in cancel.text
    assert manager.status(execution_id) == "started"
    assert [found["id"] for found in manager.executions()] == [execution_id]
    assert still_signed_in == 200


def test_the_csrf_header_htmx_sends_is_accepted(manager: LiveManager) -> None:
    execution_id = manager.start("slow", steps=40, seconds=0.25)
    manager.wait_status(execution_id, "started")
    with signed_in(manager) as client:
        token = csrf_of(client.get(f"/executions/{execution_id}/cancel").text)
        answer = client.post(
            f"/executions/{execution_id}/cancel",
            data={"mode": "kill"},
            headers={"X-CSRF-Token": token},
        )
    assert answer.status_code == 303
    manager.wait_status(execution_id, "cancelled")


def test_a_sign_in_needs_the_token_of_its_own_form(manager: LiveManager) -> None:
    with httpx.Client(base_url=manager.url, follow_redirects=False) as client:
        assert client.post("/login", data={"token": manager.token}).status_code == 403
        client.get("/login")
        wrong = client.post("/login", data={"token": manager.token, "csrf": "guess"})
        assert wrong.status_code == 403
        assert client.get("/").status_code == 303


def test_a_forged_or_tampered_session_cookie_signs_nobody_in(manager: LiveManager) -> None:
    with signed_in(manager) as client:
        real = client.cookies["dalsegno_session"].strip('"')
    payload, signature = real.split(".")
    forged = [
        "e30.AAAA",  # {} with a made-up signature
        f"{payload}.{signature[:-2]}xx",
        f"{payload[:-4]}AAAA.{signature}",
    ]
    for value in forged:
        with httpx.Client(
            base_url=manager.url, cookies={"dalsegno_session": value}, follow_redirects=False
        ) as client:
            answer = client.get("/")
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login")


def test_the_rest_api_still_wants_its_bearer_token(manager: LiveManager) -> None:
    with signed_in(manager) as client:
        assert client.get("/api/v1/executions").status_code == 401  # a cookie is no token


def test_a_fragment_asked_by_htmx_without_a_session_redirects_the_page(
    manager: LiveManager,
) -> None:
    answer = httpx.get(f"{manager.url}/fragments/executions", headers={"HX-Request": "true"})
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"].startswith("/login")


def test_sign_in_only_redirects_within_the_site(manager: LiveManager) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        with httpx.Client(base_url=manager.url, follow_redirects=False) as client:
            form = client.get("/login", params={"next": target})
            answer = client.post(
                "/login", data={"token": manager.token, "csrf": csrf_of(form.text), "next": target}
            )
            assert answer.headers["location"] == "/"


def test_the_sign_in_page_sends_a_signed_in_browser_on(manager: LiveManager) -> None:
    with signed_in(manager) as client:
        answer = client.get("/login", params={"next": "/start"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/start"
