"""The agent's outbox: every result is committed to a local SQLite file before it is sent,
and deleted only once the manager has answered for it.

This is a file of the agent process, not the store: the agent never opens the store, so
it uses the standard `sqlite3` module directly (the import contract in pyproject.toml
allows this one). WAL and `synchronous=FULL`: a result acknowledged to no one survives a
kill -9 or a power loss of the agent's host, and a restarted agent sends it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    attempt_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    sends INTEGER NOT NULL DEFAULT 0,
    agent TEXT NOT NULL DEFAULT ''
)
"""


@dataclass(frozen=True, slots=True)
class PendingResult:
    """A result the manager has not acknowledged yet."""

    row: int
    attempt_id: str
    body: dict[str, Any]
    sends: int


def outbox_path(home: Path, queue: str) -> Path:
    """`<home>/agent-<queue>-outbox.db` (a queue name is kept to safe file characters)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in queue)
    return home / f"agent-{safe}-outbox.db"


class Outbox:
    """Results waiting for the manager's acknowledgement, oldest first."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        # One connection, used under a lock from the agent's threads.
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._db:
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
            if "agent" not in columns:  # a file from before the column
                self._db.execute("ALTER TABLE results ADD COLUMN agent TEXT NOT NULL DEFAULT ''")

    def put(self, attempt_id: str, body: dict[str, Any]) -> None:
        """Commit a result (durably) before its first send; the first one kept wins."""
        self.put_many([(attempt_id, body)])

    def put_many(self, results: list[tuple[str, dict[str, Any]]]) -> None:
        """Commit results in one transaction (one fsync), before their first send."""
        now = time.time()
        rows = [
            (attempt_id, json.dumps(body, allow_nan=False), now, str(body.get("agent") or ""))
            for attempt_id, body in results
        ]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO results (attempt_id, body, created_at, agent)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )

    def replace(self, attempt_id: str, body: dict[str, Any]) -> None:
        """Put another body in place of a kept result (one the manager could not read)."""
        text = json.dumps(body, allow_nan=False)
        with self._lock, self._db:
            self._db.execute(
                "UPDATE results SET body = ?, sends = sends + 1 WHERE attempt_id = ?",
                (text, attempt_id),
            )

    def pending(self, after: int = 0, limit: int = 100) -> list[PendingResult]:
        """Kept results in the order they were put, from the one after row `after` on."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rowid, attempt_id, body, sends FROM results WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (after, limit),
            ).fetchall()
        found = []
        for row, attempt_id, text, sends in rows:
            body = json.loads(text)
            if isinstance(body, dict):
                found.append(PendingResult(int(row), str(attempt_id), body, int(sends)))
        return found

    def attempts_of(self, agent: str, limit: int = 5000) -> list[str]:
        """The attempts whose results `agent` ran and the manager has not acknowledged: the
        agent's heartbeats go on listing them, so the manager keeps awaiting them."""
        with self._lock:
            if self._closed:
                return []
            rows = self._db.execute(
                "SELECT attempt_id FROM results WHERE agent = ? ORDER BY rowid LIMIT ?",
                (agent, limit),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def sent(self, attempt_ids: list[str]) -> None:
        """Count one more send of results still kept (nothing after `close()`)."""
        with self._lock:
            if self._closed or not attempt_ids:
                return
            with self._db:
                self._db.executemany(
                    "UPDATE results SET sends = sends + 1 WHERE attempt_id = ?",
                    [(attempt_id,) for attempt_id in attempt_ids],
                )

    def remove(self, attempt_ids: list[str]) -> None:
        """The manager acknowledged (or refused for good) these results: forget them.

        After `close()` (a send that ended as the agent stopped) this does nothing: the
        results are sent again at the next start, and a second delivery is harmless."""
        with self._lock:
            if self._closed or not attempt_ids:
                return
            # Not fsynced: a crash that loses this delete sends the results once more, and
            # the manager answers a second delivery as a duplicate. The next fsynced
            # commit (a `put`) makes it durable with the WAL anyway.
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._db:
                    self._db.executemany(
                        "DELETE FROM results WHERE attempt_id = ?",
                        [(attempt_id,) for attempt_id in attempt_ids],
                    )
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM results").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()
