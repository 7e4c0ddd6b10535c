"""Connections cut under a running execution on PostgreSQL: writes are retried, and a write
whose COMMIT went through though its answer was lost is never applied twice.

The server-wide restart is tests/acceptance/test_postgres_restart.py (it disrupts every
test on the server); here only this test's own database loses its connections.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection

from conftest import WORKFLOWS, PostgresServer
from dalsegno.engine.runner import EngineConfig
from dalsegno.model.errors import StoreUnavailableError
from dalsegno.model.records import Batch, LeaseOwner, NewEvent
from dalsegno.model.states import ExecutionState
from dalsegno.service.executions import ExecutionService, RunResult
from dalsegno.store import open_store
from dalsegno.store.postgres import PostgresStore

sys.path.insert(0, str(WORKFLOWS))

E = ExecutionState
OWNER = LeaseOwner("manager-a", 1111, "100")


class CutStore(PostgresStore):
    """A store whose next writes lose their connection: after COMMIT (its answer lost) or
    before it (the transaction rolled back), as a server going away would."""

    cut_after_commit = 0
    cut_before_commit = 0

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with super()._write() as conn:
            yield conn
            if self.cut_before_commit:
                self.cut_before_commit -= 1
                raise psycopg.OperationalError("server closed the connection unexpectedly")
        if self.cut_after_commit:
            self.cut_after_commit -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")


@pytest.fixture
def cut_store(postgres: PostgresServer, postgres_database: str) -> Iterator[CutStore]:
    store = CutStore.open(postgres.store_url(postgres_database))
    assert isinstance(store, CutStore)
    yield store
    store.close()


def running(store: PostgresStore) -> tuple[str, int]:
    """A new execution this test's owner runs: its id and lease token."""
    store.create_execution("tests:deploy", {}, E.PENDING, None, None, [])
    (claimed,) = store.claim_pending(OWNER, 4e9, 1)
    return claimed.id, claimed.lease_token


def logged(store: PostgresStore, execution_id: str) -> list[str]:
    return [event.message for event in store.list_events(execution_id) if event.type == "log"]


@pytest.mark.parametrize("cut", ["cut_after_commit", "cut_before_commit"])
def test_a_batch_whose_connection_is_cut_at_commit_is_applied_exactly_once(
    cut_store: CutStore, cut: str
) -> None:
    execution_id, token = running(cut_store)
    setattr(cut_store, cut, 1)
    batch = Batch(execution_id, token, 4e9, events=[NewEvent("log", "once", created_at=1.0)])
    assert cut_store.apply(batch) is E.STARTED
    assert getattr(cut_store, cut) == 0  # the cut happened
    assert logged(cut_store, execution_id) == ["once"]


def test_a_claim_whose_answer_is_lost_is_still_this_owners(cut_store: CutStore) -> None:
    created = cut_store.create_execution("tests:deploy", {}, E.PENDING, None, None, [])
    cut_store.cut_after_commit = 1
    (claimed,) = cut_store.claim_pending(OWNER, 4e9, 5)
    assert (claimed.id, claimed.lease_owner, claimed.lease_token) == (created.id, OWNER, 1)


def test_an_unreachable_server_gives_up_after_the_lease(cut_store: CutStore) -> None:
    execution_id, token = running(cut_store)
    cut_store.cut_before_commit = 10_000  # every try fails
    batch = Batch(execution_id, token, 0.0, events=[NewEvent("log", "never", created_at=1.0)])
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        cut_store.apply(batch)  # its lease ends at once: tried for about a second
    cut_store.cut_before_commit = 0
    assert logged(cut_store, execution_id) == []


def test_executions_complete_while_their_connections_are_cut_again_and_again(
    postgres: PostgresServer, postgres_database: str, tmp_path: Path
) -> None:
    store = open_store(postgres.store_url(postgres_database))
    service = ExecutionService(store, EngineConfig(concurrency=4, lease_timeout=10.0))
    log, stop = tmp_path / "runs.log", threading.Event()
    cuts = 0

    def cut_every_connection() -> None:
        nonlocal cuts
        with psycopg.connect(postgres.dsn(postgres_database), autocommit=True) as admin:
            while not stop.is_set():  # both created: from now on, only the runs' writes
                found = admin.execute("SELECT count(*) FROM executions").fetchone()
                if found and found[0] == 2:
                    break
                time.sleep(0.01)
        with psycopg.connect(postgres.dsn("postgres"), autocommit=True) as admin:
            while not stop.wait(0.03):
                cut = admin.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                    " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (postgres_database,),
                ).fetchone()
                cuts += cut[0] if cut else 0

    params = {"log": str(log), "width": 12, "pause": 0.3, "resumable": False}
    results: list[RunResult] = []

    def run() -> None:
        results.append(service.start("spread:wide", params))

    runs = [threading.Thread(target=run) for _ in range(2)]
    cutter = threading.Thread(target=cut_every_connection)
    cutter.start()
    try:
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join(60)
    finally:
        stop.set()
        cutter.join()
        store.close()
    assert cuts >= 4
    assert [result.outcome.status for result in results] == [E.COMPLETED, E.COMPLETED]
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    keys = [(entry["execution"], entry["key"]) for entry in runs]
    assert len(keys) == len(set(keys)) == 2 * 13  # every non-resumable operation ran once
