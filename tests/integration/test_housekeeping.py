"""Deleting and purging ended executions, on each backend: every row of theirs goes and
nothing of another's; a running execution is refused; a purge keeps what its rule keeps,
lets running executions go on while it works, and finishes a delete a SIGKILL cut short."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from acceptance.test_cli_remote import ServerThread
from conftest import WORKFLOWS, run_cli, start_cli
from dalsegno.api.app import create_app
from dalsegno.model.records import Claim
from dalsegno.model.states import ExecutionState
from dalsegno.service.executions import ExecutionService
from dalsegno.store import tables as t

READS = WORKFLOWS / "reads.py"
UI_FLOWS = WORKFLOWS / "ui_flows.py"
DAY = 86400.0


def ref(name: str) -> str:
    return f"{READS}:{name}"


def rows_of(service: ExecutionService, execution_id: str) -> dict[str, int]:
    """How many rows of each table belong to the execution."""
    store: Any = service.store
    task_ids = select(t.tasks.c.id).where(t.tasks.c.execution_id == execution_id)
    graph_ids = select(t.graphs.c.id).where(t.graphs.c.execution_id == execution_id)
    counts = {
        "executions": select(func.count()).where(t.executions.c.id == execution_id),
        "graphs": select(func.count()).where(t.graphs.c.execution_id == execution_id),
        "tasks": select(func.count()).where(t.tasks.c.execution_id == execution_id),
        "attempts": select(func.count()).where(t.attempts.c.task_id.in_(task_ids)),
        "dependencies": select(func.count()).where(t.dependencies.c.graph_id.in_(graph_ids)),
        "events": select(func.count()).where(t.events.c.execution_id == execution_id),
    }
    with store._read() as conn:
        return {name: int(conn.execute(query).scalar_one()) for name, query in counts.items()}


def age(service: ExecutionService, execution_id: str, days: float) -> None:
    """Make an execution look as if it ended `days` ago."""
    store: Any = service.store
    with store._write() as conn:
        conn.execute(
            text("UPDATE executions SET ended_at = :at WHERE id = :id"),
            {"at": time.time() - days * DAY, "id": execution_id},
        )


def test_delete_removes_every_row_of_an_ended_execution_and_nothing_else(
    home: Path, service: ExecutionService
) -> None:
    doomed = service.start(ref("flaky")).execution_id  # failed: retries, two graphs, edges
    kept = service.start(ref("flaky")).execution_id
    before = rows_of(service, doomed)
    assert all(before.values()), before
    done = run_cli(home, "executions", "delete", doomed[:8])
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"Execution {doomed} deleted ({before['tasks']} tasks, {before['events']} events)\n"
    )
    assert set(rows_of(service, doomed).values()) == {0}
    assert rows_of(service, kept) == before  # the other one, same shape, untouched
    again = run_cli(home, "executions", "delete", doomed)
    assert again.returncode == 2
    assert again.stderr == f"error: unknown execution: {doomed}\n"


def test_a_running_execution_is_not_deleted(home: Path, service: ExecutionService) -> None:
    runner = threading.Thread(
        target=service.start, args=(f"{UI_FLOWS}:ticking",), kwargs={"params": {"n": 20}},
        daemon=True,
    )  # fmt: skip
    runner.start()
    deadline = time.monotonic() + 20
    while not service.list_executions() or service.list_executions()[0].status.value != "started":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    running = service.list_executions()[0].id
    while rows_of(service, running)["tasks"] < 20:  # its graph is stored
        assert time.monotonic() < deadline
        time.sleep(0.02)
    before = rows_of(service, running)
    refused = run_cli(home, "executions", "delete", running)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: Cannot delete - execution {running} is started")
    assert "cancel it first" in refused.stderr
    assert rows_of(service, running)["tasks"] == before["tasks"]
    service.cancel(running, "force")
    runner.join(30)


def test_a_resume_that_read_the_execution_before_the_delete_loses(
    service: ExecutionService,
) -> None:
    failed = service.start(ref("flaky")).execution_id
    seen = service.find(failed)  # what a resume read before the delete marked it
    assert service.store.mark_deleting(failed)
    claimed = service.store.claim(
        Claim(failed, seen.status, seen.lease_token, None, None, ExecutionState.PENDING), [], []
    )
    assert claimed is None, "a resume claimed an execution being deleted"
    with pytest.raises(Exception, match="unknown execution"):
        service.find(failed)
    service.store.remove_marked(failed)
    assert set(rows_of(service, failed).values()) == {0}


def test_purge_deletes_what_its_rule_selects_and_keeps_the_rest(
    home: Path, service: ExecutionService
) -> None:
    old = [service.start(ref("many"), {"n": 3}).execution_id for _ in range(4)]
    for execution_id in old:
        age(service, execution_id, 40)
    recent = service.start(ref("many"), {"n": 3}).execution_id
    old_failed = service.start(ref("flaky")).execution_id
    age(service, old_failed, 40)
    pending = service.create(ref("many"), {"n": 1}).id
    dry = run_cli(
        home, "executions", "purge", "--status", "completed", "--before", "30d",
        "--keep-last", "2", "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    # the newest two completed of the workflow are kept: `recent` and the newest old one
    assert dry.stdout.splitlines() == [
        "Would delete 3 executions (dry run; nothing deleted)",
        *(f"  {execution_id}" for execution_id in old[:3]),
    ]
    assert all(rows_of(service, e)["executions"] == 1 for e in old)
    done = run_cli(
        home, "executions", "purge", "--status", "completed", "--before", "30d",
        "--keep-last", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert (report["executions"], report["tasks"], report["skipped"]) == (3, 9, 0)
    assert sorted(report["ids"]) == sorted(old[:3])
    left = {e.id for e in service.list_executions()}
    assert left == {old[3], recent, old_failed, pending}
    refused = run_cli(home, "executions", "purge", "--status", "started", "--before", "1d")
    assert refused.returncode == 2
    assert "purge deletes ended executions only" in refused.stderr
    missing = run_cli(home, "executions", "purge", "--status", "failed")
    assert missing.returncode == 2  # --before is required: nothing is purged by accident


def test_running_executions_go_on_while_a_purge_works(
    home: Path, service: ExecutionService
) -> None:
    doomed = [service.start(ref("chatty"), {"tasks": 10, "lines": 150, "pause": 0}).execution_id
              for _ in range(12)]  # fmt: skip
    for execution_id in doomed:
        age(service, execution_id, 10)
    ended_at: list[float] = []
    runner = threading.Thread(
        target=lambda: service.start(f"{UI_FLOWS}:ticking", {"n": 60, "seconds": 0.05}),
        daemon=True,
    )
    runner.start()
    time.sleep(0.5)
    began = time.time()
    done = run_cli(home, "executions", "purge", "--status", "completed", "--before", "1d")
    finished = time.time()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Deleted 12 executions (120 tasks, ")
    runner.join(60)
    ticking = next(e for e in service.list_executions() if e.workflow.endswith(":ticking"))
    assert ticking.status.value == "completed"
    ended_at = [task.ended_at or 0.0 for task in service.get(ticking.id)[1]]
    during = [moment for moment in ended_at if began <= moment <= finished]
    assert during, (
        f"no task of the running execution ended during the {finished - began:.2f} s purge"
    )


def test_a_delete_cut_short_by_sigkill_is_finished_by_the_next_purge(
    home: Path, service: ExecutionService
) -> None:
    big = service.start(ref("chatty"), {"tasks": 40, "lines": 500, "pause": 0}).execution_id
    total = rows_of(service, big)["events"]
    assert total > 20_000
    deleting = start_cli(home, "executions", "delete", big)
    deadline = time.monotonic() + 60
    while rows_of(service, big)["events"] == total:  # wait until it has removed a batch
        assert deleting.poll() is None, deleting.communicate()
        assert time.monotonic() < deadline, "the delete did not begin"
        time.sleep(0.005)
    deleting.send_signal(signal.SIGKILL)
    deleting.communicate(timeout=10)
    left = rows_of(service, big)
    assert left["executions"] == 1 and left["events"] + left["tasks"] > 0, left
    shown = run_cli(home, "executions", "get", big)
    assert shown.returncode == 2, "an execution being deleted is gone for every reader"
    purged = run_cli(home, "executions", "purge", "--status", "completed", "--before", "0s")
    assert purged.returncode == 0, purged.stderr
    assert set(rows_of(service, big).values()) == {0}


@pytest.fixture
def api(service: ExecutionService) -> Iterator[httpx.Client]:
    with (
        ServerThread(create_app(service, "housekeeping-token")) as server,
        httpx.Client(
            base_url=f"{server.url}/api/v1", headers={"Authorization": "Bearer housekeeping-token"}
        ) as client,
    ):
        yield client


def test_rest_deletes_and_purges(api: httpx.Client, service: ExecutionService) -> None:
    done = service.start(ref("many"), {"n": 2}).execution_id
    pending = service.create(ref("many"), {"n": 1}).id
    refused = api.delete(f"/executions/{pending}")
    assert refused.status_code == 409
    assert "only an ended execution" in refused.json()["error"]
    deleted = api.delete(f"/executions/{done}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["id"] == done and deleted.json()["tasks"] == 2
    assert api.delete(f"/executions/{done}").status_code == 404
    old = service.start(ref("many"), {"n": 1}).execution_id
    age(service, old, 3)
    body = {"status": ["completed"], "before": "1d", "dry_run": True}
    assert api.post("/housekeeping/purge", json=body).json()["ids"] == [old]
    assert service.find(old).id == old
    purged = api.post("/housekeeping/purge", json={**body, "dry_run": False})
    assert purged.json()["executions"] == 1
    assert (
        api.post("/housekeeping/purge", json={"status": ["started"], "before": "1d"}).status_code
        == 422
    )
    assert api.post("/housekeeping/purge", json={"status": [], "before": "1d"}).status_code == 422


def test_a_completed_purge_leaves_no_rows_behind_in_any_table(
    service: ExecutionService,
) -> None:
    made = [service.start(ref("flaky")).execution_id for _ in range(3)]
    for execution_id in made:
        age(service, execution_id, 2)
    report = service.purge(["failed"], "1d")
    assert report.removed.executions == 3
    for execution_id in made:
        assert set(rows_of(service, execution_id).values()) == {0}
