"""Web UI benchmark: the execution page of large executions, in Chromium.

    .venv/bin/python benchmarks/ui_render.py [--repeat 10] [--baseline-src PATH]

Against a real `dalsegno manager` process (SQLite store), for a 5,000-task layered graph
with one failed task (50 layers of 100), a 50,000-task wide graph and a 300-task chain:

- server: `GET /executions/ID` answered in full (httpx, one connection);
- refresh: `GET /fragments/executions/ID`, what a live page asks for every 1.5 s;
- interactive: Chromium (Debian's, via Playwright) from the navigation's start until the
  page's script has drawn the graphs, bound pan and zoom and applied the states
  (`<html data-graphs="ready">`);
- open a group: a click on a group box until its tasks are drawn in place;
- go to failed: a click on "Go to failed task" until the failed task is selected and
  centred (the group that holds it opened on the way).

Medians of `--repeat` (after one warm-up each). With `--baseline-src`, the same workloads
are run and their pages measured on a manager of another source tree (an earlier commit:
`mkdir /tmp/base && git archive COMMIT | tar -x -C /tmp/base`), in the same run, on a store
of its own; that page has no script marker, so its figure is the `load` event. The target
(issue 14): the 5,000-task page interactive in under 1 s.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manager import WORKLOADS, free_port

SIZES = {
    "layered 5,000": ("layered", {"layers": 50, "width": 100, "fail": "L20-t050"}),
    "wide 50,000": ("wide", {"n": 50_000}),
    "chain 300": ("chain", {"n": 300}),
}


def start_manager(home: Path, source: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    if source is not None:
        env["PYTHONPATH"] = str(source / "src")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    site = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{site}/login").status_code == 200 and (home / "token").exists():
                return proc, site
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the manager did not start")


def run(api: httpx.Client, workflow: str, params: dict[str, object]) -> str:
    created = api.post(
        "/executions", json={"workflow": f"{WORKLOADS}:{workflow}", "params": params}
    )
    assert created.status_code == 201, created.text
    execution_id = str(created.json()["id"])
    deadline = time.monotonic() + 900
    while api.get("/executions", params={"q": execution_id, "limit": 1}).json()[0][
        "status"
    ] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.5)
    return execution_id


def timed(action: Callable[[], float | None], repeat: int) -> list[float]:
    """Seconds of each run of `action`: what it returns, or else how long it took."""
    times = []
    for _ in range(repeat + 1):
        began = time.perf_counter()
        inner = action()
        times.append(inner if inner is not None else time.perf_counter() - began)
    return times[1:]  # the first warms the caches


def sign_in_client(site: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=site, follow_redirects=False, timeout=120)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    assert client.post("/login", data={"token": token, "csrf": csrf.group(1)}).status_code == 303
    return client


def measure(
    site: str, token: str, executions: dict[str, str], repeat: int, new: bool
) -> dict[str, dict[str, list[float]]]:
    found: dict[str, dict[str, list[float]]] = {}
    client = sign_in_client(site, token)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = browser.new_context(
            base_url=site, viewport={"width": 1280, "height": 900}
        ).new_page()
        page.goto("/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/$"))
        for name, execution_id in executions.items():
            path = f"/executions/{execution_id}"

            def fetch(url: str) -> None:
                client.get(url).raise_for_status()

            figures = {
                "server": timed(lambda path=path: fetch(path), repeat),
                "refresh": timed(lambda path=path: fetch(f"/fragments{path}"), repeat),
                "interactive": timed(lambda path=path: open_page(page, path, new), repeat),
            }
            if new and name.startswith("layered"):
                figures["open a group"] = timed(lambda path=path: open_group(page, path), repeat)
                figures["go to failed"] = timed(lambda path=path: go_to_failed(page, path), repeat)
            found[name] = figures
            drawn = page.locator("svg.graph g.node").count()
            groups = page.locator("svg.graph g.group").count()
            print(f"  {name}: page draws {drawn} tasks and {groups} groups", flush=True)
        browser.close()
    client.close()
    return found


def open_page(page: Page, path: str, new: bool) -> None:
    """The page opened until its graphs are interactive (the baseline: its load event)."""
    page.evaluate("sessionStorage.clear()")
    if new:
        page.goto(path, wait_until="commit")
        page.wait_for_selector("html[data-graphs=ready]", timeout=60_000)
    else:
        page.goto(path, wait_until="load")


def open_group(page: Page, path: str) -> float:
    """Seconds from a click on a group to its tasks drawn in place."""
    page.evaluate("sessionStorage.clear()")
    page.goto(path)
    page.wait_for_selector("html[data-graphs=ready]")
    began = time.perf_counter()
    page.locator('svg.graph g.group[data-group="L30-31"] rect.frame').click()
    page.wait_for_selector('svg.graph g.node[data-group="L30-31"]')
    return time.perf_counter() - began


def go_to_failed(page: Page, path: str) -> float:
    """Seconds from a click on "Go to failed task" to the failed task selected."""
    page.evaluate("sessionStorage.clear()")
    page.goto(path)
    page.wait_for_selector("html[data-graphs=ready]")
    began = time.perf_counter()
    page.click("#goto-failed")
    page.wait_for_selector("svg.graph g.node.s-failed.selected")
    return time.perf_counter() - began


def report(label: str, results: dict[str, dict[str, list[float]]]) -> None:
    print(label, flush=True)
    for name, figures in results.items():
        for what, times in figures.items():
            print(
                f"  {name:14} {what:12} median {statistics.median(times) * 1000:6.0f} ms "
                f"({min(times) * 1000:.0f}-{max(times) * 1000:.0f}, n={len(times)})",
                flush=True,
            )


def one_tree(label: str, source: Path | None, repeat: int) -> None:
    """Run the workloads on a fresh manager of this tree (or of `source`), then measure."""
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-ui-"))
    proc, site = start_manager(home, source)
    try:
        token = (home / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{site}/api/v1", headers=headers, timeout=120) as api:
            executions = {}
            for name, (workflow, params) in SIZES.items():
                began = time.perf_counter()
                executions[name] = run(api, workflow, params)
                print(f"{label}: {name} ran in {time.perf_counter() - began:.1f} s", flush=True)
        report(f"{label}:", measure(site, token, executions, repeat, new=source is None))
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--baseline-src", type=Path, help="a source tree to compare with")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    one_tree("this tree", None, args.repeat)
    if args.baseline_src is not None:
        one_tree(f"baseline {args.baseline_src}", args.baseline_src.resolve(), args.repeat)
    print(f"load after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
