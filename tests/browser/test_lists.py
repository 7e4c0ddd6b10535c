"""The executions list's search and error column, the agents page, and the Kill
confirmation's word on thread operations, in Chromium against a real manager."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from browser.conftest import LiveManager, screenshot, sign_in
from conftest import WORKFLOWS


def test_the_list_searches_by_id_prefix_and_workflow_and_shows_errors(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    failed = manager.start("fixable", flag=str(flag))
    done = manager.start("wide", n=3)
    manager.wait_status(failed, "failed")
    manager.wait_status(done, "completed")
    sign_in(page, manager)
    page.goto("/")
    error = page.locator(f'tr[data-execution="{failed}"] td.list-error')
    expect(error).to_contain_text(f"blocked: {flag} exists")
    expect(page.locator(f'tr[data-execution="{done}"] td.list-error')).to_have_text("")
    page.fill("#execution-search", failed[:6])
    page.press("#execution-search", "Enter")
    expect(page.locator("tr[data-execution]")).to_have_count(1)
    expect(page.locator("tr[data-execution]")).to_have_attribute("data-execution", failed)
    page.fill("#execution-search", "ui_flows.py:wide")
    page.press("#execution-search", "Enter")
    expect(page.locator("tr[data-execution]")).to_have_count(1)
    expect(page.locator("tr[data-execution]")).to_have_attribute("data-execution", done)
    screenshot(page, "executions-search")
    # The live refresh keeps the search: the table still shows that one execution.
    page.wait_for_timeout(2000)
    expect(page.locator("tr[data-execution]")).to_have_count(1)


def test_the_agents_page_shows_queues_agents_heartbeats_and_held_tasks(
    page: Page, manager: LiveManager
) -> None:
    with manager.api as api:
        beat = {"queue": "web", "agent": "builder-1", "host": "host-a", "pid": 321}
        answer = api.post("/agents/heartbeat", json={**beat, "concurrency": 4})
        assert answer.status_code == 200, answer.text
        started = api.post(
            "/executions",
            json={"workflow": f"{WORKFLOWS / 'agent_flows.py'}:one", "params": {"op": "noop"}},
        )
        assert started.status_code == 201, started.text
    execution_id = started.json()["id"]
    manager.wait_status(execution_id, "started")
    sign_in(page, manager)
    page.goto("/agents")
    queue = page.locator('#queues tr[data-queue="web"]')
    expect(queue.locator(".waiting")).to_have_text("1", timeout=10_000)
    expect(queue.locator(".held")).to_have_text("0")
    agent = page.locator('#agents tr[data-agent="builder-1"]')
    expect(agent).to_contain_text("host-a")
    expect(agent).to_contain_text("none")
    with manager.api as api:
        claim = {"queue": "web", "agent": "builder-1", "wait": 0}
        claimed = api.post("/agents/claim", json=claim)
        assert claimed.status_code == 200, claimed.text
        assert len(claimed.json()) == 1
    page.reload()
    expect(queue.locator(".held")).to_have_text("1")
    expect(queue.locator(".waiting")).to_have_text("0")
    expect(agent).to_contain_text(f"{execution_id[:8]}/t")
    screenshot(page, "agents")
    agent.locator("a").click()
    expect(page).to_have_url(re.compile(f"/executions/{execution_id}"))
    expect(page.locator('#task-table tr[data-key="t"]')).to_have_count(1)


def test_the_kill_confirmation_says_thread_operations_are_abandoned(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("slow", steps=60, seconds=0.25)
    manager.wait_status(execution_id, "started")
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}/cancel?mode=kill")
    meaning = page.locator("#cancel-meaning")
    expect(meaning).to_contain_text("runs in a thread, which cannot be stopped")
    expect(meaning).to_contain_text("abandoned")
    expect(meaning).to_contain_text("process=True")
    expect(page.locator("#cancel-running")).to_contain_text("1 task running now")
    screenshot(page, "kill-confirm")
