"""The store suite of test_store_sqlite.py, run on PostgreSQL.

Every test of that module is collected here too, with its `store` fixture replaced by a
store on a fresh database of the test server (ids end in `[postgres]`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_store_sqlite import *  # noqa: F403  (its tests, collected again here)

from conftest import PostgresServer
from dalsegno.store import Store, open_store


@pytest.fixture(params=["postgres"])
def store(postgres: PostgresServer, postgres_database: str) -> Iterator[Store]:
    """A store on a fresh PostgreSQL database (overrides the SQLite one imported above)."""
    opened = open_store(postgres.store_url(postgres_database))
    yield opened
    opened.close()
