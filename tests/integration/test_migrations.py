"""The migrations build exactly the schema of `dalsegno.store.tables`, once, safely in parallel."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, create_engine, text

from dalsegno.model.states import ExecutionState
from dalsegno.store import open_store
from dalsegno.store.migrate import HEAD
from dalsegno.store.sql import SQLStore
from dalsegno.store.tables import metadata


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "dalsegno.db"


@pytest.fixture
def url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def plain_engine(url: str) -> Iterator[Engine]:
    """A bare SQLAlchemy engine on the same file, to look at it from outside dalsegno."""
    engine = create_engine(url)
    yield engine
    engine.dispose()


def schema_diff(engine: Engine, target: MetaData = metadata) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match `target`."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, target))


def versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


def open_and_close(url: str) -> None:
    open_store(url).close()


def test_a_fresh_file_is_migrated_to_exactly_the_table_definitions(
    url: str, db_path: Path, plain_engine: Engine
) -> None:
    assert not db_path.exists()
    open_and_close(url)
    assert schema_diff(plain_engine) == []
    assert versions(plain_engine) == [HEAD]


def test_the_schema_check_sees_a_difference(url: str, plain_engine: Engine) -> None:
    # The check above must be able to fail: a column the migrations lack is reported.
    open_and_close(url)
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["events"].append_column(Column("extra", Integer))
    diff = schema_diff(plain_engine, changed)
    assert [(entry[0], entry[2], entry[3].name) for entry in diff] == [
        ("add_column", "events", "extra")
    ]


def test_a_missing_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "still" / "dalsegno.db"
    open_and_close(f"sqlite:///{path}")
    assert path.is_file()


def test_opening_twice_is_a_no_op(url: str, plain_engine: Engine) -> None:
    store = open_store(url)
    created = store.create_execution(
        "tests:deploy", {"hosts": 1}, ExecutionState.PENDING, None, None, []
    )
    store.close()

    again = open_store(url)
    try:
        assert again.get_execution(created.id) == created
    finally:
        again.close()
    assert versions(plain_engine) == [HEAD]
    assert schema_diff(plain_engine) == []


def test_opening_an_up_to_date_store_needs_no_write_lock(url: str, db_path: Path) -> None:
    open_and_close(url)
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process is in the middle of a write
    outcome: list[object] = []

    def reopen() -> None:
        try:
            open_and_close(url)
            outcome.append("opened")
        except Exception as exc:
            outcome.append(exc)

    opener = threading.Thread(target=reopen)
    opener.start()
    opener.join(timeout=5)
    finished_while_locked = not opener.is_alive()
    writer.execute("ROLLBACK")
    writer.close()
    opener.join()
    assert finished_while_locked, "open_store waited for the write lock on an up-to-date store"
    assert outcome == ["opened"]


CHILD = """
import sys, time
from pathlib import Path

import alembic.command  # imported before the start line so that all children race
from dalsegno.model.states import ExecutionState
from dalsegno.store import open_store

url, go = sys.argv[1], Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
store = open_store(url)
execution = store.create_execution("tests:deploy", {}, ExecutionState.PENDING, None, None, [])
store.close()
print(execution.id, flush=True)
"""


def test_processes_opening_a_new_file_at_once_all_succeed(
    url: str, tmp_path: Path, plain_engine: Engine
) -> None:
    go = tmp_path / "go"
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
    for child, (stdout, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr
        assert len(stdout.split()) == 1
    ids = {stdout.strip() for stdout, _ in results}
    assert len(ids) == 4
    assert versions(plain_engine) == [HEAD]
    assert schema_diff(plain_engine) == []
    with plain_engine.connect() as conn:
        stored = {row[0] for row in conn.execute(text("SELECT id FROM executions"))}
    assert stored == ids


@pytest.mark.parametrize("engine_name", ["_write_engine", "_read_engine"])
def test_store_connections_are_durable_and_checked(url: str, engine_name: str) -> None:
    store = open_store(url)
    try:
        assert isinstance(store, SQLStore)
        engine: Engine = getattr(store, engine_name)
        with engine.connect() as conn:

            def pragma(name: str) -> Any:
                return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") > 0
    finally:
        store.close()
