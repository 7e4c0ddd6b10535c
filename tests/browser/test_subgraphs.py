"""Subgraphs in the execution page's graph, in Chromium (docs/ui.md, "Subgraphs"): each
one a labelled box around its tasks' boxes (a nested one inside its parent's), its label
saying its state and its retry count; at scale a subgraph is one node with its counts by
state, and a click opens it in place, its tasks and its nested subgraph's box inside."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from browser.conftest import LiveManager, screenshot, sign_in
from browser.test_graph import box, inside
from conftest import WORKFLOWS

FLOWS = WORKFLOWS / "ui_subgraphs.py"


def start(manager: LiveManager, workflow: str, **params: object) -> str:
    with manager.api as api:
        answer = api.post("/executions", json={"workflow": f"{FLOWS}:{workflow}", "params": params})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def node(page: Page, key: str) -> Locator:
    return page.locator(f'svg.graph g.node[data-key="{key}"]')


def subgraph_box(page: Page, key: str) -> Locator:
    return page.locator(f'svg.graph g.subgraph[data-subgraph="{key}"] rect.box')


def test_subgraphs_are_labelled_boxes_around_their_tasks(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    execution_id = start(manager, "boxes", mark=str(tmp_path / "configured"))
    manager.wait_status(execution_id, "completed")
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("svg.graph g.node")).to_have_count(6)
    install = page.locator('svg.graph g.subgraph[data-subgraph="install"]')
    expect(install.locator(".subgraph-label")).to_have_text("install · succeeded · retry 1/3")
    expect(install).to_have_class(re.compile(r"\bs-succeeded\b"))
    inner_label = page.locator('svg.graph g.subgraph[data-subgraph="inner"] .subgraph-label')
    expect(inner_label).to_have_text("inner · succeeded")
    outer, nested = box(subgraph_box(page, "install")), box(subgraph_box(page, "inner"))
    assert inside(nested, outer), "the nested subgraph's box is not inside its parent's"
    for key in ("configure", "unpack", "link", "start"):
        assert inside(box(node(page, key)), outer), f"{key} is drawn outside install's box"
    for key in ("unpack", "link"):
        assert inside(box(node(page, key)), nested), f"{key} is drawn outside inner's box"
    for key in ("configure", "start"):
        assert not inside(box(node(page, key)), nested), f"{key} is drawn in inner's box"
    for key in ("prepare", "verify"):
        assert not inside(box(node(page, key)), outer), f"{key} is drawn in install's box"
    # the arrows from and to the subgraph join its box: prepare's ends at its left side
    prepare, verify = box(node(page, "prepare")), box(node(page, "verify"))
    assert prepare["x"] + prepare["width"] < outer["x"]
    assert outer["x"] + outer["width"] < verify["x"]
    screenshot(page, "graph-subgraphs")


def test_at_scale_a_subgraph_is_one_node_with_its_counts_that_opens_on_click(
    page: Page, manager: LiveManager
) -> None:
    execution_id = start(manager, "big_boxes")
    manager.wait_status(execution_id, "completed", timeout=60)
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    group = page.locator('svg.graph g.group[data-group="S:install"]')
    expect(group.locator(".group-label")).to_have_text("install · succeeded · retry 0/2")
    expect(group.locator(".group-counts")).to_have_text("120 tasks")
    expect(page.locator("svg.graph g.node")).to_have_count(0)
    expect(page.locator("svg.graph g.subgraph")).to_have_count(0)
    group.click()
    members = page.locator('svg.graph g.node[data-group="S:install"]')
    expect(members).to_have_count(120)
    expect(group).to_have_class(re.compile(r"\bexpanded\b"))
    assert "expand=main%2FS%3Ainstall" in page.url
    frame = box(group.locator("rect.frame"))
    nested = box(subgraph_box(page, "inner"))
    assert inside(nested, frame), "the nested subgraph is drawn outside the opened one"
    inner_label = page.locator('svg.graph g.subgraph[data-subgraph="inner"] .subgraph-label')
    expect(inner_label).to_have_text("inner · succeeded")
    for key in ("fetch", "unpack-000", "unpack-039", "step-000", "step-078"):
        assert inside(box(node(page, key)), frame), f"{key} is drawn outside its subgraph"
        in_inner = inside(box(node(page, key)), nested)
        assert in_inner == key.startswith("unpack"), key
    screenshot(page, "graph-subgraph-open")
    group.locator(".group-label").click()
    expect(members).to_have_count(0)


def test_a_live_refresh_changes_a_subgraphs_box_in_place(page: Page, manager: LiveManager) -> None:
    execution_id = start(manager, "ticking_boxes")
    manager.wait_status(execution_id, "started")
    sign_in(page, manager)
    page.goto(f"/executions/{execution_id}")
    slow = page.locator('svg.graph g.subgraph[data-subgraph="slow"]')
    expect(slow.locator(".subgraph-label")).to_have_text(re.compile(r"^slow · (pending|running)"))
    slow.evaluate("box => { box.marked = true; }")
    expect(slow.locator(".subgraph-label")).to_have_text("slow · running · retry 0/1")
    expect(slow).to_have_class(re.compile(r"\bs-started\b"))
    expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
    expect(slow.locator(".subgraph-label")).to_have_text("slow · succeeded · retry 0/1")
    expect(slow).to_have_class(re.compile(r"\bs-succeeded\b"))
    assert slow.evaluate("box => box.marked === true"), "the refresh drew the box again"
