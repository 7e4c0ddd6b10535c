"""PostgreSQL stalled or out of connections under running managers (docs/reliability.md).

A second session holds `LOCK TABLE executions IN ACCESS EXCLUSIVE MODE` on the test's own
database; `ALTER DATABASE ... CONNECTION LIMIT 0` refuses the managers' new connections
(they connect as a role of their own: a superuser is not held to the limit). Requests
answer 503 with `Retry-After` within a few seconds instead of hanging, never 500.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from conftest import PostgresServer
from faults.conftest import StartManager
from faults.harness import Tally, Watch, doubled, run_counts, wait_for

pytestmark = [pytest.mark.crash, pytest.mark.postgres_only("the faults are PostgreSQL's")]

ANSWER_WITHIN = 10.0  # seconds: a request's retry budget, a lock_timeout, and slack


@contextmanager
def locked(dsn: str, seconds: float) -> Iterator[threading.Thread]:
    """`LOCK TABLE executions` held by another session for `seconds` (in a thread)."""
    taken = threading.Event()

    def hold() -> None:
        with psycopg.connect(dsn) as conn:
            conn.execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
            taken.set()
            time.sleep(seconds)
            conn.rollback()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(30)
    try:
        yield holder
    finally:
        holder.join(seconds + 30)


def answered_in_time(watch: Watch) -> None:
    """Every request was answered, and none took longer than `ANSWER_WITHIN`."""
    watch.check((200, 201, 503))
    slow = [took for took in watch.durations if took > ANSWER_WITHIN]
    assert not slow, slow


def test_a_locked_table_answers_503_with_retry_after_instead_of_hanging(
    managers: StartManager, postgres: PostgresServer, postgres_database: str, tmp_path: Any
) -> None:
    tally = Tally("PostgreSQL LOCK TABLE executions held 12 s (requests)", "postgres")
    log = tmp_path / "runs.log"
    manager = managers(DALSEGNO_LEASE_TIMEOUT="5")
    new = {"workflow": "faults.py:chain", "params": {"log": str(log), "steps": 1}}
    with (
        Watch(manager) as reads,
        Watch(manager, "POST", "/executions", json=new) as starts,
        locked(postgres.dsn(postgres_database), 12.0),
    ):
        tally.injected += 1
        refused = manager.call("GET", "/executions")
    answered_in_time(reads)
    answered_in_time(starts)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2"
    assert "lock_timeout" in refused.json()["error"]
    assert 503 in starts.statuses()
    ended = manager.wait_ended(starts.created, timeout=60)
    assert {execution["status"] for execution in ended.values()} <= {"completed"}
    assert doubled(log) == []
    assert manager.alive
    tally.survived += 1
    tally.record()


@pytest.fixture
def own_role(postgres: PostgresServer, postgres_database: str) -> Iterator[str]:
    """A role of this test, with every right on its database's tables (not a superuser)."""
    role = f"dalsegno_r_{uuid.uuid4().hex[:8]}"
    postgres.admin.execute(f"CREATE ROLE {role} LOGIN")
    with psycopg.connect(postgres.dsn(postgres_database), autocommit=True) as conn:
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    try:
        yield role
    finally:
        postgres.admin.execute(f"ALTER DATABASE {postgres_database} CONNECTION LIMIT -1")
        postgres.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        with psycopg.connect(postgres.dsn(postgres_database), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        postgres.admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_connections_refused_answer_503_and_running_executions_complete(
    managers: StartManager,
    postgres: PostgresServer,
    postgres_database: str,
    own_role: str,
    tmp_path: Any,
) -> None:
    tally = Tally("PostgreSQL connections refused (CONNECTION LIMIT 0) for 7 s", "postgres")
    log = tmp_path / "runs.log"
    url = postgres.store_url(postgres_database, user=own_role)
    manager = managers(DALSEGNO_STORE=url, DALSEGNO_LEASE_TIMEOUT="15")
    running = [
        manager.start_execution("faults.py:chain", log=str(log), steps=6, pause=0.2)
        for _ in range(3)
    ]
    wait_for(lambda: {entry[0] for entry in run_counts(log)} >= set(running))
    new = {"workflow": "faults.py:chain", "params": {"log": str(log), "steps": 1}}
    with Watch(manager, "POST", "/executions", json=new) as starts:
        postgres.admin.execute(f"ALTER DATABASE {postgres_database} CONNECTION LIMIT 0")
        postgres.admin.execute(  # the connections it holds go too: every new one is refused
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (own_role,),
        )
        tally.injected += 1
        time.sleep(7.0)  # longer than a request's retries, shorter than a lease
        postgres.admin.execute(f"ALTER DATABASE {postgres_database} CONNECTION LIMIT -1")
        time.sleep(1.0)
    answered_in_time(starts)
    refused = [body for _, status, body in starts.answers if status == 503]
    assert refused and all("refuses new connections" in body for body in refused), refused
    ended = manager.wait_ended([*running, *starts.created], timeout=60)
    failed = {key: value["error"] for key, value in ended.items() if value["status"] != "completed"}
    assert failed == {}
    assert doubled(log) == []
    assert manager.alive
    tally.survived += 1
    tally.record()
