"""The web UI's start form with the retry settings and the dry-run checkbox (issue 15,
items 5 and 6), in plain HTTP against a real manager: the settings are stored with the
execution, a dry run calls nothing and is marked on its pages, a bad setting is refused
with its reason and creates nothing."""

from __future__ import annotations

import re
from pathlib import Path

from browser.conftest import LiveManager, ref
from browser.test_csrf import csrf_of, signed_in


def test_the_form_starts_a_dry_run_with_task_retries_and_its_pages_say_so(
    manager: LiveManager, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()  # a real run of `fixable` fails while it exists
    with signed_in(manager) as client:
        form = client.get("/start", params={"workflow": "ui_flows:fixable"})
        assert 'name="dry_run"' in form.text
        assert 'name="task_retries"' in form.text
        answer = client.post(
            "/start",
            data={
                "csrf": csrf_of(form.text),
                "workflow": "ui_flows:fixable",
                "param.flag": str(flag),
                "task_retries": "3",
                "task_retry_interval": "0.5",
                "dry_run": "true",
            },
        )
        assert answer.status_code == 303, answer.text
        found = re.search(r"/executions/([0-9a-f]{32})$", answer.headers["location"])
        assert found
        execution_id = found.group(1)
        manager.wait_status(execution_id, "completed")
        page = client.get(f"/executions/{execution_id}").text
        listed = client.get("/").text

    stored = manager.execution(execution_id)
    assert (stored["dry_run"], stored["task_retries"], stored["task_retry_interval"]) == (
        True,
        3,
        0.5,
    )
    assert 'id="dry-run"' in page
    assert re.search(r'id="task-retries">3, every 0.5s', page)
    assert "dry run</span>" in listed


def test_a_bad_setting_is_refused_with_its_reason_and_creates_nothing(
    manager: LiveManager, tmp_path: Path
) -> None:
    with signed_in(manager) as client:
        form = client.get("/start", params={"workflow": "ui_flows:fixable"})
        answer = client.post(
            "/start",
            data={
                "csrf": csrf_of(form.text),
                "workflow": "ui_flows:fixable",
                "param.flag": str(tmp_path / "absent"),
                "task_retries": "-4",
                "dry_run": "true",
            },
        )

    assert answer.status_code == 400
    assert "task retries must be a whole number &gt;= -1" in answer.text
    assert 'value="-4"' in answer.text  # the form comes back as typed
    assert manager.executions() == []


def test_the_resume_page_of_a_dry_run_says_it_stays_dry(manager: LiveManager) -> None:
    with manager.api as api:
        real = api.post("/executions", json={"workflow": ref("slow"), "lock": "held"}).json()
        manager.wait_status(real["id"], "started")
        # a dry run waits behind the lock the real one holds, and is cancelled there
        body = {"workflow": ref("slow"), "lock": "held", "dry_run": True}
        dry = api.post("/executions", json=body).json()
        assert (dry["status"], dry["dry_run"]) == ("queued", True)
        api.post(f"/executions/{dry['id']}/cancel", json={"mode": "cancel"})
        api.post(f"/executions/{real['id']}/cancel", json={"mode": "kill"})
    manager.wait_status(dry["id"], "cancelled")
    with signed_in(manager) as client:
        page = client.get(f"/executions/{dry['id']}/resume").text

    assert 'id="dry-run"' in page
    assert "its resume is a dry run too" in page
