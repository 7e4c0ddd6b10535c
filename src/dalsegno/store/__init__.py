"""The store: the only package that talks to a database (DESIGN.md section 5)."""

from __future__ import annotations

import os
from pathlib import Path

from dalsegno.store.base import Store


def default_home() -> Path:
    """`DALSEGNO_HOME`, defaulting to `~/.dalsegno`."""
    return Path(os.environ.get("DALSEGNO_HOME") or Path.home() / ".dalsegno").expanduser()


def default_url() -> str:
    """`DALSEGNO_STORE`, else the embedded SQLite file under `DALSEGNO_HOME`."""
    return os.environ.get("DALSEGNO_STORE") or f"sqlite:///{default_home() / 'dalsegno.db'}"


def open_store(url: str | None = None) -> Store:
    """Open the store at `url`, creating or migrating its schema on first use."""
    from dalsegno.store.migrate import upgrade

    url = url or default_url()
    if url.startswith("sqlite"):
        from dalsegno.store.sqlite import SQLiteStore

        store = SQLiteStore.open(url)
    else:
        from dalsegno.model.errors import RefusedError

        msg = f"unsupported store URL (sqlite:///PATH is supported): {url}"
        raise RefusedError(msg)
    upgrade(store)
    return store


__all__ = ["Store", "default_home", "default_url", "open_store"]
