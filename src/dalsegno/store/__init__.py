"""The store: the only package that talks to a database (DESIGN.md section 5)."""

from __future__ import annotations

import os
from pathlib import Path

from dalsegno.store.base import Store

# PostgreSQL through psycopg 3; its module (and psycopg) is imported only when one is named.
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


def default_home() -> Path:
    """`DALSEGNO_HOME`, defaulting to `~/.dalsegno`."""
    return Path(os.environ.get("DALSEGNO_HOME") or Path.home() / ".dalsegno").expanduser()


def default_url() -> str:
    """`DALSEGNO_STORE`, else the embedded SQLite file under `DALSEGNO_HOME`."""
    return os.environ.get("DALSEGNO_STORE") or f"sqlite:///{default_home() / 'dalsegno.db'}"


def open_store(url: str | None = None) -> Store:
    """Open the store at `url`, creating or migrating its schema on first use.

    `sqlite:///PATH` is the embedded default; `postgresql://USER:PASSWORD@HOST:PORT/DB`
    (or `postgresql+psycopg://`) is shared by many managers. A password with `@`, `:`,
    `/` or `%` is written URL-escaped (`%40`, `%3A`, `%2F`, `%25`).
    """
    from dalsegno.store.migrate import upgrade

    url = url or default_url()
    scheme = url.partition("://")[0]
    store: Store
    if scheme.partition("+")[0] == "sqlite":
        from dalsegno.store.sqlite import SQLiteStore

        store = SQLiteStore.open(url)
    elif scheme in POSTGRES_SCHEMES:
        from dalsegno.store.postgres import PostgresStore

        store = PostgresStore.open(url)
    else:
        from dalsegno.model.errors import RefusedError

        supported = "sqlite:///PATH, postgresql://USER:PASSWORD@HOST:PORT/DB"
        msg = f"unsupported store URL ({supported} are supported): {scheme}://..."
        raise RefusedError(msg)
    upgrade(store)
    return store


__all__ = ["Store", "default_home", "default_url", "open_store"]
