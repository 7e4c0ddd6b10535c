"""Who did what is shown where people look: a resume and a cancel asked in the web UI by
people signed in with their own tokens are named on the execution's page ("Resumed by
alice"), in `GET /executions/{id}` ("actions") and on the events ("actor")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from security.conftest import ManagerProcess, csrf_of

Managers = Callable[..., ManagerProcess]


def named(page: str, verb: str, action: str, actor: str) -> bool:
    pattern = rf'<dt>{verb} by</dt><dd class="actor" data-action="{action}">{actor} · '
    return re.search(pattern, page) is not None


def test_the_execution_page_names_who_resumed_and_who_asked_a_cancel(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    alice = manager.token("alice", "operator")
    bob = manager.token("bob", "operator")
    flag, hold = tmp_path / "fail-flag", tmp_path / "hold"
    flag.touch()
    with manager.api() as api:
        params = {"fail_flag": str(flag), "hold": str(hold)}
        made = api.post("/executions", json={"workflow": "flows:deploy", "params": params})
    execution_id = str(made.json()["id"])
    manager.wait_status(execution_id, "failed")
    flag.unlink()  # the fix; the resumed app task now waits on `hold`
    hold.touch()

    with manager.signed_in(alice) as browser:
        csrf = csrf_of(browser.get(f"/executions/{execution_id}/resume").text)
        resumed = browser.post(f"/executions/{execution_id}/resume", data={"csrf": csrf})
    assert resumed.status_code == 303, resumed.text
    manager.wait_status(execution_id, "started")
    with manager.signed_in(bob) as browser:
        csrf = csrf_of(browser.get(f"/executions/{execution_id}/cancel").text)
        asked = browser.post(
            f"/executions/{execution_id}/cancel", data={"csrf": csrf, "mode": "cancel"}
        )
        assert asked.status_code == 303, asked.text
        hold.unlink()
        manager.wait_status(execution_id, "cancelled")
        page = browser.get(f"/executions/{execution_id}").text

    assert named(page, "Started", "workflow_started", "admin"), page
    assert named(page, "Resumed", "workflow_resumed", "alice"), page
    assert named(page, "Cancel asked", "cancel_requested", "bob"), page
    with manager.api() as api:
        found = api.get(f"/executions/{execution_id}").json()
        events = api.get(f"/executions/{execution_id}/events").json()
    assert [(a["type"], a["actor"]) for a in found["actions"]] == [
        ("workflow_started", "admin"),
        ("workflow_resumed", "alice"),
        ("task_reset", "alice"),  # the resume reset the failed app task
        ("cancel_requested", "bob"),
    ]
    actors = {(e["type"], e["actor"]) for e in events if e["actor"] is not None}
    assert {("workflow_resumed", "alice"), ("cancel_requested", "bob")} <= actors
