"""SQLite's group commit (dalsegno.store.group_commit): concurrent writers of a store share
a transaction and its fsync; each one's work is all or nothing; each returns durable."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select

from dalsegno.model.records import NewEvent
from dalsegno.model.states import ExecutionState
from dalsegno.store import open_store
from dalsegno.store import tables as t

pytestmark = pytest.mark.sqlite_only("the group commit is SQLite's")

WRITERS = 8
EACH = 25


def test_concurrent_writers_share_commits_and_all_of_them_are_durable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = open_store(url)
    commits = []
    event.listen(store._write_engine, "commit", lambda _conn: commits.append(1))  # type: ignore[attr-defined]
    start = threading.Barrier(WRITERS)
    made: list[str] = []

    def writer() -> None:
        start.wait()
        for _ in range(EACH):
            execution = store.create_execution(
                "w:f", {}, ExecutionState.PENDING, None, None, [NewEvent("x", "made")]
            )
            made.append(execution.id)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    store.close()
    assert len(made) == WRITERS * EACH
    assert len(commits) < WRITERS * EACH  # writes shared commits
    reopened = open_store(url)  # what a new process sees: every write is there
    try:
        assert {e.id for e in reopened.list_executions()} == set(made)
    finally:
        reopened.close()


def test_a_writer_that_fails_undoes_its_own_work_only(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    execution = store.create_execution("w:f", {}, ExecutionState.PENDING, None, None, [])
    inside = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def row(message: str) -> dict[str, object]:
        return {
            "execution_id": execution.id, "graph": None, "task_key": None, "type": "x",
            "level": "info", "message": message, "created_at": 1.0,
        }  # fmt: skip

    def first() -> None:  # opens the group, waits for the second to join it, then fails
        try:
            with store._write() as conn:  # type: ignore[attr-defined]
                conn.execute(insert(t.events), [row("undone")])
                inside.set()
                release.wait(10)
                raise ValueError("the first writer fails")
        except ValueError as exc:
            errors.append(exc)

    def second() -> None:
        inside.wait(10)
        with store._write() as conn:  # type: ignore[attr-defined]
            conn.execute(insert(t.events), [row("kept")])

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    time.sleep(0.3)  # the second writer waits for its turn: it joins the first's group
    release.set()
    for thread in threads:
        thread.join(10)
    assert [str(e) for e in errors] == ["the first writer fails"]
    with store._read() as conn:  # type: ignore[attr-defined]
        messages = [r[0] for r in conn.execute(select(t.events.c.message))]
    store.close()
    assert messages == ["kept"]
