"""Faults of the store that are not faults of the work (docs/design.md, section 3).

Two kinds, told apart here once for every caller:

- **Passing faults** (`StoreUnavailableError`): the disk is full or read-only, the file is
  locked by another process, a statement timed out, the server is unreachable. The same
  call may succeed later; writes are retried (`dalsegno.store.retry`) and a request
  answers 503 with `Retry-After`.
- **A store that is gone** (`StoreFailedError`): the SQLite file this process opened was
  deleted or replaced, or is corrupt. Nothing written from then on would be kept, so the
  store is *latched*: every later call of this process is refused at once with the
  reason, which is logged once, and written next to the file (`<file>.fault`) so that no
  process opens the file again, or a new one in its place, without an operator's word.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from dalsegno.model.errors import StoreFailedError, StoreUnavailableError

log = logging.getLogger("dalsegno.store")

# SQLite's primary result codes that a later call may not meet (its disk, its file's
# permissions, another process's lock), and what each means to an operator.
PASSING = {
    3: "permission denied",
    5: "the store file is locked by another process",
    6: "the store file is locked",
    7: "out of memory",
    8: "the store file is read-only",
    10: "the store's disk failed to read or write",
    13: "the store's disk is full",
    14: "the store file cannot be opened",
    15: "the store file's lock protocol failed",
}
CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def marker_of(database: Path) -> Path:
    """Where a process that found `database` gone or corrupt says so."""
    return database.with_name(database.name + ".fault")


def refuse_if_marked(database: Path) -> None:
    """Refuse to open a store file that a process found gone or corrupt, until an operator
    deletes the marker: opening whatever is at the path now would go on silently with a
    different (or an empty) store."""
    marker = marker_of(database)
    try:
        found = marker.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return
    except OSError as exc:
        found = [f"(the marker cannot be read: {exc.strerror})"]
    what = found[0] if found else "a process found the store file unusable"
    msg = (
        f"refusing to open the store: {what}. Restore {database} from a backup (or repair it), "
        f"then delete {marker} to start again; with no file there, the store starts empty"
    )
    raise StoreFailedError(msg)


class Latch:
    """Whether this process's store is still usable; once failed, it stays failed."""

    def __init__(self, marker: Path | None = None) -> None:
        self._marker = marker
        self._lock = threading.Lock()
        self.failure: str | None = None

    def check(self) -> None:
        """Refuse every call once the store failed."""
        if self.failure is not None:
            raise StoreFailedError(self.failure)

    def fail(self, reason: str) -> StoreFailedError:
        """Latch the store as failed (the first reason stays), say it once, and return the
        error to raise."""
        with self._lock:
            if self.failure is None:
                self.failure = reason
                log.error("the store cannot be used any more: %s; no more work is taken", reason)
                self._write_marker(reason)
        return StoreFailedError(self.failure)

    def _write_marker(self, reason: str) -> None:
        if self._marker is None:
            return
        when = datetime.fromtimestamp(time.time(), tz=UTC).isoformat(timespec="seconds")
        text = (
            f"{reason} (found by process {os.getpid()} on {socket.gethostname()} at {when})\n"
            "No dalsegno process opens this store again while this file exists. Restore the "
            "store file from a backup (or repair it), then delete this file.\n"
        )
        try:
            descriptor = os.open(self._marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as marker:
                marker.write(text)
        except FileExistsError:
            pass
        except OSError as exc:  # a full or read-only disk: the log line is all there is
            log.error("the store's fault could not be written to %s: %s", self._marker, exc)


class FileIdentity:
    """The device and inode of the file a store opened, to notice it deleted or replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        found = os.stat(path)
        self._identity = (found.st_dev, found.st_ino)

    def changed(self) -> str | None:
        """Why the file at the path is no longer the one opened, or None."""
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return f"the store file {self.path} was deleted while in use"
        except OSError:
            return None  # cannot tell (a permission, an I/O error): the statement will say
        if (found.st_dev, found.st_ino) != self._identity:
            return f"the store file {self.path} was replaced by another file while in use"
        return None


def sqlite_error(error: BaseException) -> sqlite3.Error | None:
    """The driver's error under SQLAlchemy's wrapping, if it is one."""
    found = getattr(error, "orig", None) or error
    return found if isinstance(found, sqlite3.Error) else None


def passing(error: sqlite3.Error) -> StoreUnavailableError | None:
    """A passing fault of SQLite as the error callers know, or None (a bug, a refusal)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return None
    meaning = PASSING.get(code & 0xFF)
    if meaning is None:
        return None
    return StoreUnavailableError(f"{meaning} ({error})")


def is_corruption(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in CORRUPT


def quick_check(path: Path) -> str | None:
    """What `PRAGMA quick_check` finds wrong with the file, on a connection of its own (a
    pooled one answers from the pages it cached); None when it finds nothing."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None  # it could not look (gone, no permission): no finding
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.Error as exc:
        return str(exc) if is_corruption(exc) else None
    finally:
        conn.close()
    problems = [str(row[0]) for row in rows if row and row[0] != "ok"]
    return "; ".join(problems) or None
