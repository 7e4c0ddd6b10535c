"""The store: the only package that talks to a database (docs/design.md section 7)."""

from __future__ import annotations

import os
from pathlib import Path

from dalsegno.model.errors import RefusedError, StoreUnavailableError
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
    url = url or default_url()
    scheme = url.partition("://")[0]
    sqlite = scheme.partition("+")[0] == "sqlite"
    if not sqlite and scheme not in POSTGRES_SCHEMES:
        supported = "sqlite:///PATH, postgresql://USER:PASSWORD@HOST:PORT/DB"
        msg = f"unsupported store URL ({supported} are supported): {scheme}://..."
        raise RefusedError(msg)
    if sqlite and url.partition("://")[2].lstrip("/") in ("", ":memory:"):
        msg = "a SQLite store is a file: sqlite:///PATH (an in-memory database keeps nothing)"
        raise RefusedError(msg)
    from sqlalchemy import exc

    try:
        return _open(url, scheme)
    except (exc.SQLAlchemyError, OSError) as error:
        # Unreachable, refused, not a database, no permission: one line for the person who
        # typed the URL (without its password), never a traceback.
        msg = f"cannot open the store {redacted(url)}: {_reason(error)}"
        raise StoreUnavailableError(msg) from None


def _open(url: str, scheme: str) -> Store:
    from dalsegno.store.migrate import upgrade

    store: Store
    if scheme.partition("+")[0] == "sqlite":
        from dalsegno.store.sqlite import SQLiteStore

        store = SQLiteStore.open(url)
    else:
        from dalsegno.store.postgres import PostgresStore

        store = PostgresStore.open(url)
    try:
        upgrade(store)
    except BaseException:
        store.close()
        raise
    return store


def redacted(url: str) -> str:
    """The URL with its password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL too malformed to parse: show its scheme only
        return url.partition("://")[0] + "://..."


def _reason(error: BaseException) -> str:
    """The database's own first line, without SQLAlchemy's wrapping."""
    from sqlalchemy import exc

    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    return first.removeprefix("connection failed: ")


__all__ = ["Store", "default_home", "default_url", "open_store", "redacted"]
