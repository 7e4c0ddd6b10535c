"""The execution page's graph in Chromium: zoom, pan and fit; going to the failed task in
one click; a live refresh that changes colours in place and keeps the viewport and the
selection; groups of a 5,000-task execution opened and closed; search by key."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Locator, Page, expect

from browser.conftest import LiveManager, screenshot, sign_in

TRANSFORM = re.compile(r"scale\(([-\d.e]+)\) translate\(([-\d.e]+)px, ([-\d.e]+)px\)")


def view_of(page: Page, graph: str = "main") -> tuple[float, float, float]:
    """The graph's viewport: (scale, x, y) as Panzoom set them."""
    style = page.locator(f'section.graph-view[data-graph="{graph}"] g.viewport').evaluate(
        "g => g.style.transform"
    )
    found = TRANSFORM.fullmatch(str(style))
    assert found is not None, f"no transform on the viewport: {style!r}"
    return float(found[1]), float(found[2]), float(found[3])


def scale_becomes(page: Page, wanted: float) -> None:
    """The picture's scale reaches `wanted` (Panzoom may write its transform a frame after
    the click returns), as Playwright's `expect` waits for what it checks."""
    deadline = time.monotonic() + 5.0
    found = view_of(page)[0]
    while found != pytest.approx(wanted) and time.monotonic() < deadline:
        time.sleep(0.05)
        found = view_of(page)[0]
    assert found == pytest.approx(wanted)


def box(locator: Locator) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None
    return found


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 1
        and inner["y"] >= outer["y"] - 1
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 1
    )


def canvas(page: Page, graph: str = "main") -> Locator:
    return page.locator(f'section.graph-view[data-graph="{graph}"] svg.graph')


def test_zoom_pan_and_fit_move_the_picture_and_fit_shows_all_of_it(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("deep", n=290, fail_at=200)
    manager.wait_status(execution_id, "failed", timeout=60)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("svg.graph g.node")).to_have_count(290)
    # A 290-task chain is folded into bands and fitted to the screen at first.
    picture = page.locator("svg.graph g.viewport")
    expect(picture).to_have_attribute("style", re.compile(r"scale\(0\.\d+\)"))
    assert inside(box(picture), box(canvas(page)))
    scale, x, y = view_of(page)
    page.click('[data-zoom="in"]')
    scale_becomes(page, scale * 1.25)
    page.click('[data-zoom="out"]')
    scale_becomes(page, scale)
    # Dragging pans by the distance dragged (in the picture's units: divided by its scale).
    area = box(canvas(page))
    start = (area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] - 200, start[1] - 100, steps=8)
    page.mouse.up()
    now = view_of(page)
    assert now[1] == pytest.approx(x - 200 / scale, abs=2 / scale)
    assert now[2] == pytest.approx(y - 100 / scale, abs=2 / scale)
    # The wheel zooms around the pointer.
    page.mouse.move(*start)
    page.mouse.wheel(0, -300)
    expect(picture).not_to_have_attribute("style", re.compile(rf"scale\({now[0]}\)"))
    assert view_of(page)[0] > now[0]
    screenshot(page, "graph-zoomed")
    page.click('[data-zoom="fit"]')
    scale_becomes(page, scale)
    assert inside(box(picture), box(canvas(page)))
    # The viewport is kept across a reload (sessionStorage), not reset.
    page.click('[data-zoom="in"]')
    scale_becomes(page, scale * 1.25)  # read once Panzoom wrote it, not the fit before
    kept = view_of(page)
    page.reload()
    expect(page.locator("svg.graph g.node")).to_have_count(290)
    page.wait_for_function("() => document.querySelector('g.viewport').style.transform")
    assert view_of(page) == pytest.approx(kept)


def test_one_click_goes_to_the_failed_task_inside_a_closed_group(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("layered", layers=50, width=100, fail="L20-t050")
    manager.wait_status(execution_id, "failed", timeout=120)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("svg.graph g.group")).to_have_count(25)
    expect(page.locator("svg.graph g.node")).to_have_count(0)
    failed_group = page.locator("svg.graph g.group.s-failed")
    expect(failed_group).to_have_count(1)
    expect(failed_group.locator(".group-counts")).to_have_text("200 tasks · 1 failed")
    expect(page.locator("#goto-failed")).to_have_text("Go to failed task (1)")
    page.click("#goto-failed")
    failed = page.locator('svg.graph g.node[data-key="L20-t050"]')
    expect(failed).to_have_class(re.compile(r"\bs-failed\b"))
    expect(failed).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#selection")).to_contain_text("L20-t050 failed on purpose")
    assert inside(box(failed), box(canvas(page))), "the failed task is off-screen"
    assert view_of(page)[0] >= 1.0, "the failed task is not shown at a readable size"
    screenshot(page, "graph-failed-task")
    page.click("#open-task")
    expect(page.locator("h1")).to_contain_text("L20-t050")


def test_a_group_of_a_5000_task_execution_opens_in_place_and_closes(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("layered", layers=50, width=100)
    manager.wait_status(execution_id, "completed", timeout=120)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    group = page.locator('svg.graph g.group[data-group="L10-11"]')
    expect(group.locator(".group-label")).to_have_text("layers 11-12")
    expect(group.locator(".group-counts")).to_have_text("200 tasks")
    page.evaluate("window.notReloaded = true")
    group.click()
    members = page.locator('svg.graph g.node[data-group="L10-11"]')
    expect(members).to_have_count(200)
    expect(page.locator("svg.graph g.node.s-succeeded")).to_have_count(200)
    expect(group).to_have_class(re.compile(r"\bexpanded\b"))
    assert "expand=main%2FL10-11" in page.url  # a reload or a link keeps it open
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "graph-group-open")
    page.locator('svg.graph g.group[data-group="L10-11"] .group-label').click()
    expect(members).to_have_count(0)
    assert "expand" not in page.url


def test_a_live_refresh_changes_colours_in_place_and_keeps_viewport_and_selection(
    page: Page, manager: LiveManager
) -> None:
    # 14 s of ticks: the task selected below (the latest in view, tick033) starts after
    # about 11.5 s, long after it is selected; three refreshes (1.5 s each) come first
    execution_id = manager.start("ticking", n=40, seconds=0.35)
    manager.wait_status(execution_id, "started")
    sign_in(page, manager)
    refreshes: list[str] = []
    page.on(
        "response",
        lambda answer: (
            refreshes.append(answer.url)
            if f"/fragments/executions/{execution_id}?" in answer.url
            or answer.url.endswith(f"/fragments/executions/{execution_id}")
            else None
        ),
    )
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("svg.graph g.node")).to_have_count(40)
    page.click('[data-zoom="in"]')
    page.click('[data-zoom="in"]')
    area = box(canvas(page))
    page.mouse.move(area["x"] + 300, area["y"] + 100)
    page.mouse.down()
    page.mouse.move(area["x"] + 200, area["y"] + 150, steps=5)
    page.mouse.up()
    # Select the latest task in view: it changes state later.
    shown = page.evaluate(
        """() => { const area = document.querySelector('svg.graph').getBoundingClientRect();
        return [...document.querySelectorAll('svg.graph g.node')].filter(node => {
          const r = node.getBoundingClientRect();
          return r.left >= area.left && r.right <= area.right && r.top >= area.top
            && r.bottom <= area.bottom; }).map(node => node.dataset.key); }"""
    )
    last = page.locator(f'svg.graph g.node[data-key="{max(shown)}"]')
    expect(last).to_have_class(re.compile(r"\bs-(pending|sent|started)\b"))
    last.click()
    expect(last).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#selection")).to_contain_text(max(shown))
    kept = view_of(page)
    # Mark the drawn elements: a refresh that re-drew them would lose the marks.
    page.evaluate(
        "document.querySelectorAll('svg.graph g.node').forEach(n => n.marked = true);"
        "window.notReloaded = true"
    )
    states_before = page.locator("svg.graph g.node.s-succeeded").count()
    refreshes.clear()
    for count in (1, 2, 3):
        for _ in range(100):  # a refresh every 1.5 s: 10 s is plenty
            if len(refreshes) >= count:
                break
            page.wait_for_timeout(100)
        assert len(refreshes) >= count, "the page stopped refreshing"
        page.wait_for_timeout(150)  # the swap and the states applied
        assert view_of(page) == pytest.approx(kept), "a refresh moved the viewport"
        expect(last).to_have_class(re.compile(r"\bselected\b"))
    states_after = page.locator("svg.graph g.node.s-succeeded").count()
    assert states_after > states_before, "the colours did not follow the execution"
    assert page.evaluate(
        "[...document.querySelectorAll('svg.graph g.node')].every(n => n.marked)"
    ), "a refresh drew the graph again instead of changing colours in place"
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
    expect(last).to_have_class(re.compile(r"\bs-succeeded\b"))
    expect(last).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#selection .badge")).to_have_text("succeeded")
    assert view_of(page) == pytest.approx(kept)


def test_search_by_key_filters_the_table_and_goes_to_the_first_match(
    page: Page, manager: LiveManager
) -> None:
    execution_id = manager.start("layered", layers=50, width=100, fail="L20-t050")
    manager.wait_status(execution_id, "failed", timeout=120)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    page.fill("#task-search", "L33-t07")
    page.press("#task-search", "Enter")
    expect(page.locator("#task-table tbody tr")).to_have_count(10)
    expect(page.locator("#task-table tbody tr").first).to_have_attribute("data-key", "L33-t070")
    match = page.locator('svg.graph g.node[data-key="L33-t070"]')
    expect(match).to_have_class(re.compile(r"\bselected\b"))
    assert inside(box(match), box(canvas(page)))
    expect(page.locator("#goto-match")).to_contain_text("(10)")
    page.click("#goto-match")
    expect(page.locator('svg.graph g.node[data-key="L33-t071"]')).to_have_class(
        re.compile(r"\bselected\b")
    )
