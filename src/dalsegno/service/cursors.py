"""Opaque cursors of the paged lists: where the next page starts.

A cursor is the position of the last row a page held, in the list's own order, as
URL-safe base64 of a small JSON object tagged with its list, so a cursor of the events
cannot be given to the executions. Clients must treat it as opaque: its content may change
between versions; a malformed or foreign one is refused, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dalsegno.model.errors import RefusedError

LIMIT = 1000  # the longest cursor taken: a position is a few dozen characters


def encode(kind: str, position: list[Any]) -> str:
    text = json.dumps({"k": kind, "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(kind: str, cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The position in `cursor`, which must be a cursor of the list `kind` whose values
    have the types of `shape`; else a refusal."""
    refused = RefusedError(f"malformed cursor: {cursor[:40]!r} is not a cursor of this list")
    if not isinstance(cursor, str) or not cursor or len(cursor) > LIMIT:
        raise refused
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    position = found.get("p") if isinstance(found, dict) else None
    if found.get("k") != kind or not isinstance(position, list) or len(position) != len(shape):
        raise refused
    for value, kind_of in zip(position, shape, strict=True):
        number = kind_of is float and isinstance(value, int)  # JSON writes 2.0 as 2
        if not (isinstance(value, kind_of) or number) or isinstance(value, bool):
            raise refused
    return position
