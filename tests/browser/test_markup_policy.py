"""The pages of executions, their graphs and the agents carry no inline script, no inline
event handler and no inline style attribute, so a Content-Security-Policy of scripts and
styles from this site only holds on them; their scripts are files under /static."""

from __future__ import annotations

import re

from browser.conftest import LiveManager
from browser.test_csrf import signed_in

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
STYLE = re.compile(r"\sstyle\s*=", re.I)


def check(html: str, where: str) -> None:
    for attributes, body in SCRIPT.findall(html):
        if 'type="application/json"' in attributes:
            continue  # data, never run
        assert re.search(r'\bsrc="/static/[\w.]+\.js"', attributes), f"{where}: {attributes!r}"
        assert not body.strip(), f"{where}: an inline script"
    assert not HANDLER.search(html), f"{where}: an inline event handler"
    assert not STYLE.search(html), f"{where}: an inline style attribute"


def test_no_inline_script_handler_or_style_on_the_pages_of_executions(
    manager: LiveManager,
) -> None:
    small = manager.start("fixable", flag="/nonexistent-flag-of-the-markup-test")
    large = manager.start("layered", layers=5, width=100, fail="L02-t010")
    manager.wait_status(small, "completed")
    manager.wait_status(large, "failed", timeout=60)
    task = manager.execution(large)["tasks"][0]["id"]
    paths = [
        "/",
        "/fragments/executions",
        "/agents",
        f"/executions/{small}",
        f"/executions/{large}",
        f"/executions/{large}?expand=main/L2-3",
        f"/fragments/executions/{large}",
        f"/fragments/executions/{large}/graphs?expand=main/L2-3",
        f"/fragments/executions/{large}/tasks/{task}",
        f"/executions/{large}/tasks/{task}",
        f"/executions/{large}/cancel?mode=kill",
    ]
    with signed_in(manager) as client:
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            check(answer.text, path)
