"""The sizes dalsegno accepts, in one place (docs/reliability.md, "Size limits").

Everything a caller or an operation hands over is stored, and read back by every view of
it: a limit keeps one execution from filling the disk, or the memory of the manager that
shows it. What is refused is refused with the size and the limit in one line; what is
written while it happens (a log line, an error) is cut with a marker instead, since the
work that wrote it must not fail for it.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

MAX_PARAMS = 1 * MIB  # bytes of an execution's params as the store keeps them (JSON)
MAX_KWARGS = 1 * MIB  # bytes of one task's operation arguments, the same way
MAX_RESULT = 1 * MIB  # one operation's result, the same way
MAX_KEY = 255  # characters of a task key, a graph name, a lock key
MAX_TEXT = 100_000  # characters of a log line, an error, a traceback: longer ones are cut
MAX_BODY = 2 * MIB  # bytes of a request body (REST API, web UI forms)
MAX_AGENT_BODY = 16 * MIB  # bytes of an agent's request (a result with its log lines)
MAX_AGENT_LOGS = 8 * MIB  # characters of log lines an agent sends with one result
LIST_PARAMS = 4 * KIB  # params larger than this are left out of list views
LIST_TEXT = 1_000  # characters of an execution's error that list views show

CUT = " ...(cut)"


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, cut to `limit` characters with a marker when it is longer."""
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


def size_text(size: int) -> str:
    """`1,234,567 bytes`."""
    return f"{size:,} bytes"


def too_large(what: str, encoded: str, limit: int) -> str | None:
    """Why JSON text (as the store keeps it) is refused, or None when it fits."""
    size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8", "replace"))
    if size <= limit:
        return None
    return f"{what} is {size_text(size)} of JSON, over the limit of {size_text(limit)}"


def too_long(what: str, key: str) -> str | None:
    """Why a key or a name is refused (longer than `MAX_KEY` characters), or None."""
    if len(key) <= MAX_KEY:
        return None
    return f"{what} is {len(key):,} characters, over the limit of {MAX_KEY}: {key[:40]!r}..."
