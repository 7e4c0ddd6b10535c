"""The web UI in Chromium: sign-in, the live list, the graph's colours, resume, cancel,
starting an execution, markup shown as text, large graphs drawn as groups (the graph's
pan, zoom, groups and live refresh: test_graph.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser.conftest import LiveManager, screenshot, sign_in

GREEN, RED, GREY = "rgb(22, 163, 74)", "rgb(220, 38, 38)", "rgb(156, 163, 175)"


def fill_of(page: Page, key: str) -> str:
    node = page.locator(f'svg.graph g.node[data-key="{key}"] rect')
    return str(node.evaluate("rect => getComputedStyle(rect).fill"))


def failed_fixable(manager: LiveManager, tmp_path: Path) -> tuple[str, Path]:
    flag = tmp_path / "flag"
    flag.touch()
    execution_id = manager.start("fixable", flag=str(flag))
    manager.wait_status(execution_id, "failed")
    return execution_id, flag


def test_every_page_needs_a_sign_in_with_the_admin_token(page: Page, manager: LiveManager) -> None:
    for path in ("/", "/start", "/executions/abc"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("wrong token")
    screenshot(page, "login")
    page.fill("input[name=token]", manager.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/executions/abc$"))  # back where it was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "dalsegno_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert manager.token not in cookie["value"]
    page.goto("/")
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_the_list_shows_executions_and_updates_live_as_one_completes(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    failed_id, _ = failed_fixable(manager, tmp_path)
    sign_in(page, manager)
    slow_id = manager.start("slow", steps=10, seconds=0.3)
    page.goto("/")
    page.evaluate("window.notReloaded = true")
    row = page.locator(f'tr[data-execution="{slow_id}"]')
    expect(row.locator(".badge")).to_have_text(re.compile("pending|started"))
    expect(page.locator(f'tr[data-execution="{failed_id}"] .badge')).to_have_text("failed")
    expect(page.locator(f'tr[data-execution="{failed_id}"] .count')).to_have_text("2 / 4")
    # Newest first.
    expect(page.locator("tr[data-execution]").first).to_have_attribute("data-execution", slow_id)
    screenshot(page, "executions-running")
    expect(row.locator(".badge")).to_have_text("completed", timeout=20_000)
    expect(row.locator(".count")).to_have_text("10 / 10")
    assert page.evaluate("window.notReloaded") is True, "the page reloaded instead of updating"
    page.select_option("select[name=status]", "failed")
    expect(page.locator("tr[data-execution]")).to_have_count(1)
    expect(page.locator("tr[data-execution]")).to_have_attribute("data-execution", failed_id)
    screenshot(page, "executions")


def test_the_execution_page_draws_the_graph_in_the_colours_of_the_states(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    execution_id, flag = failed_fixable(manager, tmp_path)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("svg.graph g.node")).to_have_count(4)
    assert fill_of(page, "first") == GREEN
    assert fill_of(page, "side") == GREEN
    assert fill_of(page, "gate") == RED
    assert fill_of(page, "last") == GREY
    expect(page.locator("svg.graph path.arrow")).to_have_count(2)  # first -> gate -> last
    # Arrows point right: gate stands right of first, last right of gate.
    xs = {
        key: float(page.locator(f'g.node[data-key="{key}"] rect').get_attribute("x") or "")
        for key in ("first", "gate", "last")
    }
    assert xs["first"] < xs["gate"] < xs["last"]
    gate_row = page.locator('#task-table tr[data-key="gate"]')
    expect(gate_row).to_contain_text("failed")
    expect(gate_row.locator(".task-error")).to_contain_text(f"blocked: {flag} exists")
    expect(page.locator("#events")).to_contain_text("the flag")
    expect(page.locator("#resume")).to_be_visible()
    expect(page.locator("#cancel")).to_have_count(0)  # a failed execution cannot be cancelled
    screenshot(page, "execution-failed")
    page.click('#task-table tr[data-key="gate"] a')
    expect(page.locator("h1")).to_contain_text("gate")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    expect(page.locator("#attempts")).to_contain_text("failed")
    expect(page.locator("#task-events")).to_contain_text(f"the flag {flag} is still there")
    screenshot(page, "task")


def test_resume_shows_the_plan_then_brings_a_failed_execution_to_completed(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    execution_id, flag = failed_fixable(manager, tmp_path)
    flag.unlink()  # the fix
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    page.click("#resume")
    expect(page.locator('#plan tr[data-key="first"]')).to_have_attribute("data-action", "kept")
    expect(page.locator('#plan tr[data-key="gate"]')).to_have_attribute("data-action", "reset")
    expect(page.locator('#plan tr[data-key="last"]')).to_have_attribute("data-action", "run")
    assert manager.status(execution_id) == "failed", "the plan must change nothing"
    page.click("#reset-operations")
    expect(page.locator("#confirm-resume")).to_have_text("Resume with reset operations")
    screenshot(page, "resume-plan")
    page.click("#confirm-resume")
    expect(page).to_have_url(re.compile(f"/executions/{execution_id}$"))
    expect(page.locator("#status")).to_have_text("completed", timeout=20_000)
    expect(page.locator("svg.graph g.node.s-succeeded")).to_have_count(4)
    assert manager.status(execution_id) == "completed"
    expect(page.locator("#resume")).to_have_count(0)
    screenshot(page, "execution-resumed")


def test_cancel_asks_for_a_confirmation_then_brings_a_running_execution_to_cancelled(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("slow", steps=60, seconds=0.25)
    manager.wait_status(execution_id, "started")
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("started")
    for button in ("#cancel", "#force", "#kill"):
        expect(page.locator(button)).to_be_visible()
    expect(page.locator("#resume")).to_have_count(0)
    page.click("#cancel")
    expect(page.locator("h1")).to_contain_text("Cancel")
    assert manager.status(execution_id) == "started", "asking for confirmation changes nothing"
    screenshot(page, "cancel-confirm")
    page.click("#confirm-cancel")
    expect(page.locator("#status")).to_have_text("cancelled", timeout=20_000)
    assert manager.status(execution_id) == "cancelled"
    expect(page.locator("#resume")).to_be_visible()  # a cancelled execution can be resumed
    done = manager.execution(execution_id)["tasks"]
    assert any(task["status"] == "pending" for task in done), "the cancel stopped the chain"


@pytest.mark.parametrize("mode", ["force", "kill"])
def test_force_cancel_and_kill_are_confirmed_then_end_the_execution_cancelled(
    page: Page, manager: LiveManager, mode: str
) -> None:
    execution_id = manager.start("slow", steps=60, seconds=0.25)
    manager.wait_status(execution_id, "started")
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    page.click(f"#{mode}")
    expect(page.locator("#confirm-cancel")).to_be_visible()
    assert manager.status(execution_id) == "started"
    page.click("#confirm-cancel")
    expect(page.locator("#status")).to_have_text("cancelled", timeout=20_000)
    assert manager.status(execution_id) == "cancelled"
    asked = {"force": "Force-cancel requested", "kill": "Kill-cancel requested"}[mode]
    expect(page.locator("#events")).to_contain_text(asked)


def test_markup_written_by_an_operation_shows_as_text(page: Page, manager: LiveManager) -> None:
    execution_id = manager.start("hostile")
    manager.wait_status(execution_id, "failed")
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#execution-error")).to_contain_text("<script>alert(1)</script>")
    expect(page.locator('#task-table tr[data-key="<b>bold</b>"] .task-error')).to_contain_text(
        "<script>alert(1)</script>"
    )
    expect(page.locator('#task-table tr[data-key="<b>bold</b>"] a')).to_have_text("<b>bold</b>")
    expect(page.locator("#execution b")).to_have_count(0)  # no element came from the key
    expect(page.locator('svg.graph g.node[data-key="<b>bold</b>"] text')).to_have_text(
        "<b>bold</b>"
    )
    expect(page.locator("#events")).to_contain_text("log line <script>alert(1)</script>")
    screenshot(page, "execution-markup")
    page.click('#task-table tr[data-key="<b>bold</b>"] a')
    expect(page.locator("#task-error")).to_have_text(
        "NonRecoverableError: <script>alert(1)</script>"
    )
    expect(page.locator("#task-events")).to_contain_text("log line <script>alert(1)</script>")
    # The page fixture fails the test if any alert() ran.


def test_the_start_form_offers_the_allowed_workflows_with_a_field_per_parameter(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    """The manager serves the workflows of its directory (no --workflows): the form offers
    them (not the file that does not import), a field per parameter typed by its annotation;
    a value the annotation refuses creates nothing; the start records who asked."""
    sign_in(page, manager)
    page.goto("/start")
    offered = page.locator("#workflows a").evaluate_all(
        "links => links.map(a => a.dataset.workflow)"
    )
    assert {"ui_flows:fixable", "ui_flows:slow", "typed:typed"} <= set(offered)
    assert not [found for found in offered if found.startswith("b_broken")]
    page.click('#workflows a[data-workflow="typed:typed"]')
    expect(page.locator("#workflow-doc")).to_contain_text("Records what it was given")
    expect(page.locator('select[name="param.fail"] option')).to_have_text(
        ["(default)", "true", "false"]
    )
    expect(page.locator('select[name="param.mode"] option')).to_have_text(
        ["(default)", "fast", "safe"]
    )
    expect(page.locator('textarea[name="param.hosts"]')).to_be_visible()
    page.fill('input[name="param.count"]', "abc")
    page.click("#start")
    expect(page.locator("#start-error")).to_contain_text("count")
    assert manager.executions() == [], "a refused start creates nothing"
    expect(page.locator('input[name="param.count"]')).to_have_value("abc")

    # choosing another workflow submits the chooser (forms.js: no inline script runs here)
    page.select_option("select[name=workflow]", "ui_flows:fixable")
    expect(page.locator("#start-form")).to_have_attribute("data-workflow", "ui_flows:fixable")
    page.fill('input[name="param.flag"]', str(tmp_path / "absent"))
    page.fill("input[name=lock]", "deploys")
    screenshot(page, "start")
    page.click("#start")
    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f]{32}$"))
    expect(page.locator("#status")).to_have_text("completed", timeout=20_000)
    [started] = manager.executions()
    assert (started["lock"], started["params"]) == ("deploys", {"flag": str(tmp_path / "absent")})
    assert page.url.endswith(started["id"])
    expect(page.locator('dd.actor[data-action="workflow_started"]')).to_contain_text("admin")


def test_a_large_graph_is_drawn_as_groups_beside_a_paged_table(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("wide", n=420)
    manager.wait_status(execution_id, "completed", timeout=60)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    # 420 independent tasks are one layer, cut into groups of 200: boxes with their counts.
    expect(page.locator("svg.graph g.group")).to_have_count(3)
    expect(page.locator("svg.graph g.node")).to_have_count(0)
    expect(page.locator('g.group[data-group="L0.1"] .group-counts')).to_have_text("200 tasks")
    expect(page.locator('g.group[data-group="L0.3"] .group-counts')).to_have_text("20 tasks")
    expect(page.locator(".graph-view")).to_contain_text("drawn as 3 groups")
    expect(page.locator("#task-table tbody tr")).to_have_count(50)
    expect(page.locator(".pager")).to_contain_text("page 1 of 9")
    page.click("text=next →")
    expect(page.locator("#task-table tbody tr").first).to_have_attribute("data-key", "t00050")
    screenshot(page, "execution-large")


def test_a_graph_of_300_tasks_is_drawn_whole_with_its_fan_out_wrapped(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("fan", n=298)
    manager.wait_status(execution_id, "completed", timeout=60)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("svg.graph g.node")).to_have_count(300)
    expect(page.locator("svg.graph path.arrow")).to_have_count(2 * 298)
    expect(page.locator("svg.graph g.node.s-succeeded")).to_have_count(300)
    start = page.locator('g.node[data-key="start"] rect')
    end = page.locator('g.node[data-key="end"] rect')
    assert float(start.get_attribute("x") or "") < float(end.get_attribute("x") or "")
    height = float(page.locator("svg.graph").get_attribute("height") or "")
    assert height < 2000, "the column of 298 tasks wraps instead of running 12,000 px down"
    screenshot(page, "execution-300")
