"""The deployments pages in Chromium against a real manager: the three-tier example's
deployment listed, its instances and their relationship picture, and install, heal,
scale and uninstall started from its buttons, each through its confirmation page, each
run by the manager to its end and seen on the page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser.conftest import LiveManager, screenshot, sign_in, wait_for

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "examples" / "blueprints" / "three_tier.yaml"


@pytest.fixture
def manager_args() -> list[str]:
    """The manager serves the example's operations (docs/security.md)."""
    return ["--workflows", str(THREE_TIER.parent)]


def deployment(manager: LiveManager) -> dict[str, Any]:
    with manager.api as api:
        found: dict[str, Any] = api.get("/deployments/web").json()
    return found


def confirm_and_follow(page: Page, manager: LiveManager, title: str) -> None:
    """On a confirmation page: say yes, land on the execution, wait for its end."""
    expect(page.locator("h1")).to_contain_text(title)
    page.click("#confirm-action")
    page.wait_for_url(re.compile(r".*/executions/[^/]+$"))
    execution_id = page.url.rsplit("/", 1)[1]
    manager.wait_status(execution_id, "completed", timeout=60)
    assert manager.execution(execution_id)["deployment_id"] == "web"


def test_a_deployment_is_shown_installed_healed_scaled_and_uninstalled(
    page: Page, manager: LiveManager, tmp_path: Path
) -> None:
    with manager.api as api:
        body = {
            "id": "three-tier",
            "source": THREE_TIER.read_text(),
            "base_dir": str(THREE_TIER.parent),
        }
        assert api.post("/blueprints", json=body).status_code == 201
        create = {
            "id": "web",
            "blueprint_id": "three-tier",
            "inputs": {"app_vms": 1, "cloud_dir": str(tmp_path / "cloud")},
        }
        assert api.post("/deployments", json=create).status_code == 201
    sign_in(page, manager)
    page.click("header >> text=Deployments")
    row = page.locator("#deployments tr[data-deployment=web]")
    expect(row).to_contain_text("6 uninitialized")
    row.locator("a").click()
    page.wait_for_url(re.compile(r".*/deployments/web$"))
    expect(page.locator("#instances tbody tr")).to_have_count(6)
    expect(page.locator("svg.instances g.instance")).to_have_count(6)
    # two VMs and the load balancer depend on the network; the database and the app are
    # contained in their VMs; the app is connected to the database, the balancer to the app
    expect(page.locator("svg.instances path.relationship")).to_have_count(7)
    screenshot(page, "deployment-new")

    page.click("#install")
    confirm_and_follow(page, manager, "Install")
    page.goto("/deployments/web")
    expect(page.locator("#instances tr[data-state=started]")).to_have_count(6)
    expect(page.locator("svg.instances g.instance[data-state=started]")).to_have_count(6)
    vm = next(i for i in deployment(manager)["instances"] if i["node"] == "db_vm")
    ip = vm["runtime_properties"]["ip"]
    expect(page.locator(f"#instances tr[data-instance={vm['id']}]")).to_contain_text(ip)
    screenshot(page, "deployment-installed")

    app = next(i for i in deployment(manager)["instances"] if i["node"] == "app")
    page.locator(f"#instances tr[data-instance={app['id']}] a.heal").click()
    confirm_and_follow(page, manager, f"instance {app['id']}")

    page.goto("/deployments/web")
    page.select_option("#scale-node", "app_vm")
    page.fill("#scale-delta", "+1")
    page.click("#scale")
    confirm_and_follow(page, manager, "Scale")
    page.goto("/deployments/web")
    expect(page.locator("#instances tr[data-state=started]")).to_have_count(8)

    page.click("#uninstall")
    confirm_and_follow(page, manager, "Uninstall")
    page.goto("/deployments/web")
    expect(page.locator("#instances tr[data-state=deleted]")).to_have_count(8)
    runs = page.locator("#deployment-executions tbody tr")
    expect(runs).to_have_count(4)
    expect(runs.first).to_contain_text("dalsegno.lifecycle:uninstall")
    wait_for(lambda: deployment(manager)["instance_states"] == {"deleted": 8})
    screenshot(page, "deployment-uninstalled")


def test_a_viewer_sees_no_buttons_and_an_action_needs_its_confirmation(
    page: Page, manager: LiveManager
) -> None:
    with manager.api as api:
        body = {"id": "small", "source": "node_templates:\n  box:\n    type: thing\n"}
        assert api.post("/blueprints", json=body).status_code == 201
        assert api.post("/deployments", json={"id": "web", "blueprint_id": "small"}).is_success
        made = api.post("/tokens", json={"name": "vic", "role": "viewer"})
    sign_in(page, manager)
    page.goto("/deployments/web/install")
    expect(page.locator("#confirm-action")).to_be_visible()
    assert manager.executions() == []  # the page asks; only its POST starts
    page.goto("/deployments/web/scale?node=box&delta=0")
    expect(page.locator("[role=alert]")).to_contain_text("a delta other than 0")
    page.context.clear_cookies()
    page.goto("/login")
    page.fill("input[name=token]", made.json()["token"])
    page.click("button[type=submit]")
    page.goto("/deployments/web")
    expect(page.locator("#instances tbody tr")).to_have_count(1)
    expect(page.locator("#install")).to_have_count(0)
    expect(page.locator("a.heal")).to_have_count(0)
