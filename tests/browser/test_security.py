"""The web UI's defences as Chromium sees them: a page of another origin cannot frame the
UI (the frame stays blank, the browser says why), and revoking a person's token ends the
session a browser is using at once (its live page goes to the sign-in page by itself)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.conftest import LiveManager, screenshot, sign_in


class Attacker:
    """A site on another port of the same host, serving a page that frames `target` (the
    web UI) beside one of its own pages."""

    def __init__(self, target: str) -> None:
        pages = {
            "/attack.html": (
                f'<iframe id="victim" src="{target}" width="900" height="500"></iframe>'
                '<iframe id="own" src="/inner.html" width="300" height="100"></iframe>'
            ),
            "/inner.html": '<p id="inner">a page of this site, framed</p>',
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Attacker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker(manager: LiveManager) -> Iterator[Attacker]:
    execution_id = manager.start("slow", steps=60, seconds=0.25)
    with Attacker(f"{manager.url}/executions/{execution_id}") as running:
        yield running


def test_a_page_of_another_origin_cannot_frame_the_web_ui(
    page: Page, manager: LiveManager, attacker: Attacker
) -> None:
    sign_in(page, manager)  # the victim is signed in: its cookie would go with the frame
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text))
    page.goto(f"{attacker.url}/attack.html")
    own = page.frame_locator("#own")
    expect(own.locator("#inner")).to_have_text("a page of this site, framed")  # frames work
    page.wait_for_timeout(1000)  # time for the framed page to load, were it allowed
    victim = page.locator("#victim").element_handle()
    assert victim is not None
    frame = victim.content_frame()
    assert frame is not None
    assert frame.locator("#status").count() == 0, "the execution page rendered in the frame"
    assert frame.locator("button, a").count() == 0, "the frame shows something to click"
    screenshot(page, "framed-blank")
    assert any(
        re.search(r"(Refused to (display|frame)|Framing).*(X-Frame-Options|frame-ancestors)", text)
        for text in refusals
    ), refusals


def test_revoking_a_token_ends_a_live_browser_session(
    browser: Browser, manager: LiveManager
) -> None:
    with manager.api as api:
        made = api.post("/tokens", json={"name": "olga", "role": "operator"})
    assert made.status_code == 201, made.text
    execution_id = manager.start("slow", steps=60, seconds=0.25)
    context = browser.new_context(base_url=manager.url)
    page = context.new_page()
    try:
        page.goto("/login")
        page.fill("input[name=token]", made.json()["token"])
        page.click("button[type=submit]")
        page.goto(f"/executions/{execution_id}")
        expect(page.locator("#signed-in-as")).to_have_text("olga · operator")
        expect(page.locator("#cancel")).to_be_visible()  # an operator may act
        with manager.api as api:
            assert api.delete("/tokens/olga").status_code == 200
        # nobody touches the page: its next live refresh finds the session ended
        expect(page).to_have_url(re.compile(r"/login"), timeout=10_000)
        page.goto(f"/executions/{execution_id}/cancel?mode=kill")
        expect(page).to_have_url(re.compile(r"/login"))
    finally:
        context.close()
    assert manager.status(execution_id) in ("started", "completed")


def test_the_pages_break_no_rule_of_their_content_security_policy(
    page: Page, manager: LiveManager
) -> None:
    """Every page a person uses, live refreshes, zoom and the start form included, runs
    under `script-src 'self'; style-src 'self'` without the browser refusing anything."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
            else None
        ),
    )
    execution_id = manager.start("fixable", flag="/nonexistent-flag")
    manager.wait_status(execution_id, "completed")
    sign_in(page, manager)
    for path in (
        "/",
        f"/executions/{execution_id}",
        "/agents",
        "/start",
        "/start?workflow=typed:typed",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    page.goto("/")
    page.wait_for_timeout(2000)  # a live refresh or two
    assert violations == []
