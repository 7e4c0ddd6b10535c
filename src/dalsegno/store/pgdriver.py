"""psycopg's own connection, for the statements that go past SQLAlchemy on PostgreSQL.

A transaction through the engine costs three round trips even for one SELECT (BEGIN, the
statement, COMMIT), and its Python more. The calls every request or every exchange makes
lend a pooled connection's driver connection in autocommit instead, and send what they
need: their own BEGIN and COMMIT in a pipeline (`dalsegno.store.agent_pgexchange`), or one
statement, which PostgreSQL runs as a transaction of its own (`PostgresStore._read_row`).
psycopg prepares a statement after five runs on a connection, and keeps it: no ROLLBACK
comes to make it forget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine


@contextlib.contextmanager
def autocommit(engine: Engine) -> Iterator[Any]:
    """The driver connection of a pooled connection, in autocommit while it is lent (the
    pool's checkout checks it as for any other use)."""
    raw = engine.raw_connection()
    try:
        pg: Any = raw.dbapi_connection
        pg.autocommit = True
        try:
            yield pg
        finally:
            with contextlib.suppress(Exception):
                pg.autocommit = False
    finally:
        raw.close()


def named(pg: Any) -> Any:
    """A cursor of `pg` whose rows have named fields. psycopg is imported here, not with
    the module: every store loads this module, and a SQLite process never needs psycopg."""
    from psycopg.rows import namedtuple_row

    return pg.cursor(row_factory=namedtuple_row)


__all__ = ["autocommit", "named"]
