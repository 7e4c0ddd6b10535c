"""Create or migrate the schema on first use, safely when several processes start at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from dalsegno.store.base import Store

HEAD = "0002"
MIGRATIONS = Path(__file__).parent / "migrations"


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

    # The write transaction (BEGIN IMMEDIATE on SQLite) serialises concurrent first starts.
    with store._write_engine.begin() as conn:
        if current_revision(conn) == HEAD:
            return
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
