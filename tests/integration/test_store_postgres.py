"""What only the PostgreSQL backend has to prove: URLs and passwords, migrations that race,
claims that never take one execution twice, lock keys serialised across connections.

The suites shared with SQLite run on it too (conftest.py's matrix, and
test_store_postgres_suite.py for the store suite).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, QueuePool, create_engine, event, text
from test_migrations import CHILD, schema_diff, versions

from conftest import PostgresServer
from dalsegno.model.access import Role, TokenRecord
from dalsegno.model.errors import RefusedError
from dalsegno.model.records import LeaseOwner
from dalsegno.model.states import ExecutionState
from dalsegno.store import Store, open_store
from dalsegno.store.migrate import HEAD, MIGRATION_LOCK
from dalsegno.store.postgres import PostgresStore, _pre_ping

E = ExecutionState
OWNERS = (LeaseOwner("manager-a", 1111, "100"), LeaseOwner("manager-b", 2222, "200"))


@pytest.fixture
def empty_database(postgres: PostgresServer) -> Iterator[str]:
    """A database with no schema at all: what a first start of dalsegno finds."""
    name = postgres.create()
    try:
        yield name
    finally:
        postgres.drop(name)


@pytest.fixture
def url(postgres: PostgresServer, postgres_database: str) -> str:
    return postgres.store_url(postgres_database)


@pytest.fixture
def opener() -> Iterator[Callable[[str], Store]]:
    """`open_store`, closing every store it opened at the end."""
    opened: list[Store] = []

    def open_(url: str) -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def plain_engine(postgres: PostgresServer, empty_database: str) -> Iterator[Engine]:
    """A bare SQLAlchemy engine on the empty database, to look at it from outside."""
    engine = create_engine(postgres.store_url(empty_database).replace("://", "+psycopg://", 1))
    yield engine
    engine.dispose()


def pending(store: Store, count: int, lock_key: str | None = None) -> list[str]:
    return [
        store.create_execution("tests:deploy", {"n": n}, E.PENDING, None, None, [], lock_key).id
        for n in range(count)
    ]


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads that start at the same moment; their results, in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        start.wait()
        try:
            results[index] = call()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


# --- URLs, passwords, connections ------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg"])
def test_a_password_that_needs_escaping_in_a_url_works(
    postgres: PostgresServer, empty_database: str, scheme: str, opener: Callable[[str], Store]
) -> None:
    role = f"dalsegno_role_{uuid.uuid4().hex[:8]}"
    password = "p@ss:w/rd%41 é"  # "%41" must stay three characters, never become "A"
    postgres.admin.execute(
        psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password)
        )
    )
    try:
        postgres.admin.execute(f"ALTER DATABASE {empty_database} OWNER TO {role}")
        url = postgres.store_url(empty_database, user=role, password=password)
        assert "p%40ss%3Aw%2Frd%2541" in url
        store = opener(url.replace("postgresql://", f"{scheme}://", 1))
        created = store.create_execution("tests:deploy", {}, E.PENDING, None, None, [])
        assert store.get_execution(created.id) == created
        assert isinstance(store, PostgresStore)
        assert password not in store.url and "p%40ss" not in store.url  # printed by managers
        with store._write_engine.connect() as conn:
            # The server trusts local connections, so it proves nothing that one was let in:
            # libpq's own record of what it sent does.
            info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
            assert (info.user, info.password, info.dbname) == (role, password, empty_database)
            owner = conn.execute(
                text("SELECT tableowner FROM pg_tables WHERE tablename = 'executions'")
            )
            assert owner.scalar() == role  # the schema was made by that role
        store.close()
    finally:
        postgres.drop(empty_database)
        postgres.admin.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://u:secret@127.0.0.1/db",
        "postgresql+asyncpg://u:secret@127.0.0.1/db",
        "mysql://u:secret@127.0.0.1/db",
    ],
)
def test_an_unsupported_url_is_refused_without_showing_its_password(url: str) -> None:
    with pytest.raises(RefusedError, match="unsupported") as refused:
        open_store(url)
    assert "secret" not in str(refused.value)


def test_connections_are_pooled_read_committed_and_the_read_path_is_read_only(
    url: str, opener: Callable[[str], Store]
) -> None:
    store = opener(url)
    assert isinstance(store, PostgresStore)
    assert isinstance(store._write_engine.pool, QueuePool)
    assert store._read_engine.pool is store._write_engine.pool  # one pool for both
    assert event.contains(store._write_engine, "checkout", _pre_ping)  # no dead socket is used
    for engine, read_only in ((store._write_engine, "off"), (store._read_engine, "on")):
        with engine.connect() as conn:
            assert conn.execute(text("SHOW transaction_isolation")).scalar() == "read committed"
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == read_only
    with pytest.raises(Exception, match="read-only transaction"), store._read() as conn:
        conn.execute(text("DELETE FROM events"))


def test_a_connection_killed_by_the_server_is_replaced(
    postgres: PostgresServer, url: str, postgres_database: str, opener: Callable[[str], Store]
) -> None:
    store = opener(url)
    created = store.create_execution("tests:deploy", {}, E.PENDING, None, None, [])
    postgres.admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
        (postgres_database,),
    )
    assert store.get_execution(created.id) == created  # pre-ping found the pooled one dead


def test_a_token_is_read_by_one_statement_alone_and_a_revocation_holds_at_once(
    postgres: PostgresServer, url: str, postgres_database: str, opener: Callable[[str], Store]
) -> None:
    """Every request with a token but the admin's reads it: one statement, which the
    server runs as a transaction of its own (no BEGIN and COMMIT around it)."""
    store = opener(url)
    made = time.time()
    store.add_token("a" * 64, TokenRecord("agent-web", Role.AGENT, "web", made, "admin"))
    store.add_token("b" * 64, TokenRecord("agent-db", Role.AGENT, "db", made, "admin"))
    found = store.token_by_hash("a" * 64)
    assert found == TokenRecord("agent-web", Role.AGENT, "web", made, "admin")
    last = postgres.admin.execute(  # the last statement of each idle pooled connection
        "SELECT query FROM pg_stat_activity WHERE datname = %s AND state = 'idle'",
        (postgres_database,),
    ).fetchall()
    assert [q for (q,) in last if q.startswith("SELECT tokens.name")], last
    assert store.token_by_hash("c" * 64) is None  # unknown
    assert store.revoke_token("agent-web", "admin", time.time()) is not None
    assert store.token_by_hash("a" * 64) is None  # refused at the next read
    postgres.admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
        (postgres_database,),
    )
    found = store.token_by_hash("b" * 64)  # the killed connection was replaced
    assert found is not None and found.queue == "db"


# --- migrations ---------------------------------------------------------------------------


def test_a_fresh_database_is_migrated_to_exactly_the_table_definitions(
    postgres: PostgresServer, empty_database: str, plain_engine: Engine
) -> None:
    open_store(postgres.store_url(empty_database)).close()
    assert schema_diff(plain_engine) == []
    assert versions(plain_engine) == [HEAD]


def test_opening_twice_is_a_no_op(
    postgres: PostgresServer, empty_database: str, plain_engine: Engine
) -> None:
    url = postgres.store_url(empty_database)
    store = open_store(url)
    created = store.create_execution("tests:deploy", {}, E.PENDING, None, None, [])
    store.close()
    again = open_store(url)
    try:
        assert again.get_execution(created.id) == created
    finally:
        again.close()
    assert versions(plain_engine) == [HEAD]
    assert schema_diff(plain_engine) == []


def test_the_upgrade_waits_for_the_migration_lock(
    postgres: PostgresServer, empty_database: str, plain_engine: Engine
) -> None:
    url = postgres.store_url(empty_database)
    holder = psycopg.connect(postgres.dsn(empty_database), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    opened = threading.Event()
    opener = threading.Thread(target=lambda: (open_store(url).close(), opened.set()))
    try:
        opener.start()
        assert not opened.wait(0.5), "the upgrade ran while another process held its lock"
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        holder.close()
        opener.join(30)
    assert opened.is_set()
    assert versions(plain_engine) == [HEAD]


def test_processes_migrating_a_fresh_database_at_once_all_succeed(
    postgres: PostgresServer, empty_database: str, plain_engine: Engine, tmp_path: Path
) -> None:
    url, go = postgres.store_url(empty_database), tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", CHILD, url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        go.touch()
        results = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (_, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr
    ids = {stdout.strip() for stdout, _ in results}
    assert len(ids) == 4
    assert versions(plain_engine) == [HEAD]
    assert schema_diff(plain_engine) == []
    with plain_engine.connect() as conn:
        assert {row[0] for row in conn.execute(text("SELECT id FROM executions"))} == ids


# --- claims -------------------------------------------------------------------------------


def test_two_claimers_never_claim_one_execution_twice(
    url: str, opener: Callable[[str], Store]
) -> None:
    created = set(pending(opener(url), 300))
    claimers = [opener(url) for _ in OWNERS]  # a pool each, like two managers

    def claim_all(store: Store, owner: LeaseOwner) -> list[str]:
        claimed: list[str] = []
        while True:
            batch = store.claim_pending(owner, time.time() + 60, 7)
            claimed.extend(record.id for record in batch)
            if not batch and not store.list_executions(E.PENDING):
                return claimed

    first, second = together(
        *(
            lambda s=store, o=owner: claim_all(s, o)
            for store, owner in zip(claimers, OWNERS, strict=True)
        )
    )
    assert first and second, "both claimers took part"
    assert not set(first) & set(second)
    assert len(first) + len(second) == len(created)
    assert set(first) | set(second) == created
    records = claimers[0].list_executions()
    assert {record.lease_token for record in records} == {1}  # each was claimed once
    owners = {record.id: record.lease_owner for record in records}
    assert {owners[i] for i in first} == {OWNERS[0]}
    assert {owners[i] for i in second} == {OWNERS[1]}


def test_a_claim_skips_an_execution_another_claim_has_locked(
    postgres: PostgresServer, url: str, postgres_database: str, opener: Callable[[str], Store]
) -> None:
    store = opener(url)
    oldest, younger = pending(store, 2)
    with psycopg.connect(postgres.dsn(postgres_database)) as other:  # a claim in flight
        other.execute("SELECT id FROM executions WHERE id = %s FOR UPDATE", (oldest,))
        began = time.monotonic()
        claimed = store.claim_pending(OWNERS[0], time.time() + 60, 2)
        assert time.monotonic() - began < 2, "the claim waited for the locked row"
        other.rollback()
    assert [record.id for record in claimed] == [younger]
    assert store.claim_pending(OWNERS[1], time.time() + 60, 2)[0].id == oldest


# --- lock keys ----------------------------------------------------------------------------


def test_executions_created_at_once_with_one_lock_key_let_only_one_run(
    url: str, opener: Callable[[str], Store]
) -> None:
    stores = [opener(url) for _ in range(6)]
    for _ in range(5):
        created = together(
            *(lambda s=store: pending(s, 1, lock_key="shared")[0] for store in stores)
        )
        states = [stores[0].get_execution(i).status for i in created]  # type: ignore[union-attr]
        assert states.count(E.PENDING) == 1, states
        assert states.count(E.QUEUED) == len(stores) - 1
        for execution_id in created:  # end them all: the next round starts free
            stores[0].request_cancel(execution_id, E.CANCELLED, [])
        assert {stores[0].get_execution(i).status for i in created} == {E.CANCELLED}  # type: ignore[union-attr]


def test_a_queued_execution_is_promoted_when_the_holder_is_cancelled_as_it_is_created(
    url: str, opener: Callable[[str], Store]
) -> None:
    """The holder ends while another execution with its key is created: whichever commits
    first, the new one ends up pending, never queued behind nobody."""
    stores = [opener(url), opener(url)]
    for _ in range(20):
        (holder,) = pending(stores[0], 1, lock_key="k")
        _, (created,) = together(
            lambda h=holder: stores[0].request_cancel(h, E.CANCELLED, []),
            lambda: pending(stores[1], 1, lock_key="k"),
        )
        assert stores[0].get_execution(created).status is E.PENDING  # type: ignore[union-attr]
        stores[0].request_cancel(created, E.CANCELLED, [])


def test_statements_stay_prepared_across_reads_but_batches_are_planned_afresh(
    url: str, opener: Callable[[str], Store]
) -> None:
    """psycopg prepares a statement after five runs on a connection, and PostgreSQL keeps
    its generic plan. A read ended with the pool's ROLLBACK, at which psycopg forgets
    everything it prepared; it ends with COMMIT. The batches' statements (arrays of rows,
    `dalsegno.store.pgbulk`) are never prepared: a generic plan cannot know how many rows
    the arrays hold, and the owner's UPDATE of tasks ran at a third of its speed on one."""
    store = opener(url)
    assert isinstance(store, PostgresStore)
    (execution_id,) = pending(store, 1)
    engine: Any = store._write_engine
    raw = engine.raw_connection()  # the store's one connection while this test runs
    pg: Any = raw.dbapi_connection
    raw.close()
    for _ in range(8):
        assert store.read_status(execution_id) is not None
        with engine.begin() as conn:
            cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            row = dict.fromkeys(store._task_update.names)  # type: ignore[attr-defined]
            row.update(b_id=-1, b_execution_id=execution_id, b_expected="sent")
            assert store._task_update.run_many(cursor, [row, {**row, "b_id": -2}]) == 0  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is pg  # the same connection all along
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars()
        statements = [" ".join(statement.split()) for statement in prepared]
    assert [s for s in statements if s.startswith("SELECT executions.status")], statements
    assert not [s for s in statements if s.startswith("UPDATE tasks SET")], statements
