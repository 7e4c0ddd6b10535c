"""Make the screenshots of docs/: the web UI on a real manager, a real agent and the
examples' workflows (examples/fleet.py), in Debian's Chromium.

    .venv/bin/python docs/screenshots.py

It runs a rolling release of about 5,000 tasks that fails on one host, a small one that
completes, and an audit whose tasks an agent holds, then photographs the executions list,
the failed release's page (its groups, then the failed task reached in one click), and the
agents page.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait(condition, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="dalsegno-shots-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    dalsegno = [sys.executable, "-m", "dalsegno"]
    manager = subprocess.Popen(
        [*dalsegno, "manager", "--bind", f"127.0.0.1:{port}", "--grace", "1"],
        cwd=EXAMPLES, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    agent = None
    try:
        wait(lambda: (home / "token").exists() and _answers(site), "the manager")
        token = (home / "token").read_text().strip()
        api = httpx.Client(
            base_url=f"{site}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        agent = subprocess.Popen(
            [*dalsegno, "agent", "--queue", "ops", "--manager", site, "--token", token,
             "--name", "ops-agent-1", "--concurrency", "2"],
            cwd=EXAMPLES, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def start(workflow: str, **params: object) -> str:
            answer = api.post("/executions", json={"workflow": workflow, "params": params})
            answer.raise_for_status()
            return str(answer.json()["id"])

        def status(execution_id: str) -> str:
            return str(
                next(e for e in api.get("/executions").json() if e["id"] == execution_id)["status"]
            )

        done = start("fleet:rollout", regions=2, hosts=20)
        wait(lambda: status(done) == "completed", "the small release")
        failed = start("fleet:rollout", broken="eu-west-3/web-042")
        wait(lambda: status(failed) == "failed", "the release to fail")
        audit = start("fleet:audit", hosts=3, seconds=120)
        wait(lambda: status(audit) == "started", "the audit to start")
        time.sleep(3)  # the agent claims and starts its two slots
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox"]
            )
            page = browser.new_context(
                base_url=site, viewport={"width": 1360, "height": 900}, device_scale_factor=1
            ).new_page()
            page.goto("/login")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/$"))
            page.wait_for_selector(f'tr[data-execution="{audit}"]')
            shoot(page, "ui-executions.png", "main")
            page.goto(f"/executions/{failed}")
            page.wait_for_selector("html[data-graphs=ready]")
            shoot(page, "ui-groups.png", "#graphs")
            page.click("#goto-failed")
            page.wait_for_selector("svg.graph g.node.s-failed.selected")
            page.wait_for_selector("#selection:not([hidden])")
            page.wait_for_timeout(300)
            shoot(page, "ui-execution.png", "main", height=1500)
            page.goto("/agents")
            shoot(page, "ui-agents.png", "main")
            browser.close()
    finally:
        for process in (agent, manager):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def _answers(site: str) -> bool:
    try:
        return httpx.get(f"{site}/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def shoot(page: Page, name: str, selector: str, height: int | None = None) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None
    clip = {**box, "height": min(box["height"], height or box["height"])}
    page.screenshot(path=str(DOCS / name), clip=clip, full_page=True)
    print(f"docs/{name}", flush=True)


if __name__ == "__main__":
    main()
