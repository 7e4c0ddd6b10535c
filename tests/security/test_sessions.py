"""The web UI's sessions live in the store: signing out, revoking the token and idling end
them at once, so a copied cookie is worth nothing after; people sign in with their own
tokens, agents cannot. And every answer carries the headers that forbid framing it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from security.conftest import ManagerProcess, csrf_of

Managers = Callable[..., ManagerProcess]
COOKIE = "dalsegno_session"


def copy_of(client: httpx.Client, manager: ManagerProcess) -> httpx.Client:
    """Another browser holding a copy of `client`'s session cookie."""
    copied = manager.browser()
    copied.cookies.set(COOKIE, client.cookies[COOKIE])
    return copied


def running_execution(manager: ManagerProcess, hold: Path) -> str:
    hold.touch()
    with manager.api() as api:
        made = api.post(
            "/executions", json={"workflow": "flows:deploy", "params": {"hold": str(hold)}}
        )
    execution_id = str(made.json()["id"])
    manager.wait_status(execution_id, "started")
    return execution_id


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    execution_id = running_execution(manager, tmp_path / "hold")
    with manager.signed_in() as browser:
        csrf = csrf_of(browser.get(f"/executions/{execution_id}/cancel").text)
        stolen = copy_of(browser, manager)
        assert stolen.get("/").status_code == 200  # the copy works while the session lasts
        assert browser.post("/logout", data={"csrf": csrf}).status_code == 303
    try:
        assert stolen.get("/").headers["location"].startswith("/login")
        kill = stolen.post(
            f"/executions/{execution_id}/cancel", data={"csrf": csrf, "mode": "kill"}
        )
    finally:
        stolen.close()
    assert kill.status_code == 303 and kill.headers["location"].startswith("/login")
    with manager.api() as api:
        assert api.get(f"/executions/{execution_id}").json()["status"] == "started"
    (tmp_path / "hold").unlink()


def test_revoking_a_token_ends_its_live_sessions_at_once(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    execution_id = running_execution(manager, tmp_path / "hold")
    operator = manager.token("olga", "operator")
    with manager.signed_in(operator) as browser, manager.signed_in(operator) as other:
        page = browser.get(f"/executions/{execution_id}/cancel")
        assert page.status_code == 200
        assert "olga" in browser.get("/").text  # who is signed in
        csrf = csrf_of(page.text)
        with manager.api() as api:
            assert api.delete("/tokens/olga").status_code == 200
        fragment = browser.get(f"/fragments/executions/{execution_id}", headers={"HX-Request": "1"})
        forced = browser.post(
            f"/executions/{execution_id}/cancel", data={"csrf": csrf, "mode": "force"}
        )
        elsewhere = other.get("/")
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"].startswith("/login")
    assert forced.status_code == 303 and forced.headers["location"].startswith("/login")
    assert elsewhere.status_code == 303  # every session of the token, not only one
    with manager.api() as api:
        assert api.get(f"/executions/{execution_id}").json()["status"] == "started"
    with manager.browser() as again:
        form = again.get("/login")
        refused = again.post("/login", data={"token": operator, "csrf": csrf_of(form.text)})
    assert refused.status_code == 401
    (tmp_path / "hold").unlink()


def test_a_session_idle_past_the_timeout_ends(
    home: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py", "--session-idle", "2")
    with manager.signed_in() as browser:
        for _ in range(4):  # in use: kept alive past the idle timeout
            assert browser.get("/").status_code == 200
            time.sleep(0.8)
        time.sleep(2.5)
        ended = browser.get("/")
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")


def test_people_sign_in_with_their_own_token_and_agents_cannot(
    home: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    viewer = manager.token("vic", "viewer")
    agent = manager.token("web-1", "agent", queue="web")
    with manager.signed_in(viewer) as browser:
        home_page = browser.get("/").text
        assert "vic · viewer" in home_page
        assert 'href="/start"' not in home_page  # a viewer is offered no action
        assert browser.get("/start").status_code == 403
    with manager.browser() as browser:
        form = browser.get("/login")
        refused = browser.post("/login", data={"token": agent, "csrf": csrf_of(form.text)})
        assert refused.status_code == 401
        assert "the token of a person" in refused.text
        assert browser.get("/").status_code == 303


def test_every_answer_forbids_framing_and_pages_run_scripts_from_this_site_only(
    home: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    with manager.signed_in() as browser:
        answers = {
            "page": browser.get("/"),
            "login": httpx.get(f"{manager.url}/login"),
            "static": browser.get("/static/forms.js"),
            "api": httpx.get(f"{manager.url}/api/v1/executions"),  # a 401
            "docs": httpx.get(f"{manager.url}/api/v1/docs"),
            "health": httpx.get(f"{manager.url}/healthz"),
        }
    for name, answer in answers.items():
        assert answer.headers["x-frame-options"] == "DENY", name
        assert answer.headers["x-content-type-options"] == "nosniff", name
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy, name
        assert "unsafe-inline" not in policy.partition("script-src")[2].partition(";")[0], name
    page_policy = answers["page"].headers["content-security-policy"]
    assert "script-src 'self';" in page_policy
    assert "<script>" not in answers["page"].text  # no inline script to allow
    assert not re.search(r"\son[a-z]+=", answers["page"].text)  # nor inline handlers
    assert "sha256-" in answers["docs"].headers["content-security-policy"]
