"""Create or migrate the schema on first use, safely when several processes start at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, inspect, select, text

if TYPE_CHECKING:
    from dalsegno.store.base import Store

HEAD = "0014"
MIGRATIONS = Path(__file__).parent / "migrations"
# The advisory lock migrations take on PostgreSQL: a constant of the single 64-bit key
# space ("dalsegno" in ASCII), apart from the two-key space the lock keys of executions use.
MIGRATION_LOCK = 0x64616C7365676E6F


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(store: Store) -> None:
    """Bring the schema to HEAD; a store already there costs one read."""
    from dalsegno.store.sql import SQLStore

    assert isinstance(store, SQLStore)
    with store._read_engine.connect() as conn:
        if current_revision(conn) == HEAD:
            return
    from alembic import command
    from alembic.config import Config

    # The write transaction serialises concurrent first starts: BEGIN IMMEDIATE on SQLite,
    # a transaction-scoped advisory lock on PostgreSQL (its DDL is transactional, so a
    # process that waited sees the finished schema, or nothing if the first one failed).
    with store._write_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # A migration may wait for another process's, and build an index on a large
            # table: the session's lock and statement timeouts are not for it.
            conn.execute(text("SET LOCAL lock_timeout = 0"))
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        if current_revision(conn) == HEAD:
            return
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
