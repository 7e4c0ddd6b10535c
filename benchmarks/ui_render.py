"""Web UI benchmark: how long the execution page of a 10,000-task execution takes.

    .venv/bin/python benchmarks/ui_render.py [--tasks 10000] [--repeat 10]

Against a real `dalsegno manager` process (SQLite store): it runs `workloads.py:wide`
with `--tasks` tasks (and a 300-task one, drawn in full) to completion, signs in, then:

- server: `GET /executions/ID` answered in full (httpx, one connection), median of `--repeat`;
- browser: Chromium (Debian's, via Playwright) navigates to the page until its `load` event
  (HTML parsed, CSS applied, htmx loaded, the SVG laid out), median of `--repeat`.

The target (issue 6): the 10,000-task page renders in under 2 s.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manager import WORKLOADS, start_manager


def run(client: httpx.Client, url: str, n: int) -> str:
    created = client.post(
        f"{url}/executions", json={"workflow": f"{WORKLOADS}:wide", "params": {"n": n}}
    ).json()
    deadline = time.monotonic() + 600
    while client.get(f"{url}/executions/{created['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the execution did not complete"
        time.sleep(0.2)
    return str(created["id"])


def sign_in(site: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=site, follow_redirects=False, timeout=60)
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    assert client.post("/login", data={"token": token, "csrf": csrf.group(1)}).status_code == 303
    return client


def measure(
    site: str, token: str, execution_id: str, repeat: int
) -> tuple[list[float], list[float]]:
    server = []
    client = sign_in(site, token)
    try:
        for _ in range(repeat + 1):
            began = time.perf_counter()
            page = client.get(f"/executions/{execution_id}")
            server.append(time.perf_counter() - began)
            assert page.status_code == 200, page.status_code
    finally:
        client.close()
    browser_times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        context = browser.new_context(base_url=site)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/$"))
        for _ in range(repeat + 1):
            began = time.perf_counter()
            page.goto(f"/executions/{execution_id}", wait_until="load")
            browser_times.append(time.perf_counter() - began)
        rows = page.locator("#task-table tbody tr").count()
        nodes = page.locator("svg.graph g.node").count()
        print(f"  page shows {rows} table rows, {nodes} drawn tasks", flush=True)
        browser.close()
    return server[1:], browser_times[1:]  # the first of each warms the caches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-ui-"))
    proc, url = start_manager(home)
    try:
        token = (home / "token").read_text().strip()
        site = url.removesuffix("/api/v1")
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
            sizes = {"large": args.tasks, "drawn": 300}
            executions = {}
            for name, n in sizes.items():
                began = time.perf_counter()
                executions[name] = run(api, url, n)
                print(f"{name}: {n} tasks ran in {time.perf_counter() - began:.1f} s", flush=True)
        for name, execution_id in executions.items():
            print(f"{name} ({sizes[name]} tasks):", flush=True)
            server, browser = measure(site, token, execution_id, args.repeat)
            for what, times in (("server", server), ("browser", browser)):
                print(
                    f"  {what}: median {statistics.median(times) * 1000:.0f} ms, "
                    f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms, n={len(times)}",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
