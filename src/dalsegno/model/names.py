"""The names a caller gives (queues, agents, hosts; blueprint and deployment ids): what
the server takes, said once.

The REST API's schema carries `NAME_PATTERN`, and the service checks the same rule, so a
generated client or a fuzzer and the server agree on every name. A name is 1 to 255
characters with none that would hide or rewrite text on a terminal or a page: no control
characters (C0, DEL, C1), no line or paragraph separators, no zero-width or bidirectional
formatting characters, no lone surrogates (which no database encoding can store).
"""

from __future__ import annotations

import re

from dalsegno.model.errors import RefusedError

NAME_LIMIT = 255
_REFUSED = (
    r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb"
)
# Lone surrogates are not in the pattern (the schema's regex engine takes none), and need
# not be: a JSON body that spells one is refused as malformed text before any pattern.
NAME_PATTERN = f"^[^{_REFUSED}]+$"
_NAME = re.compile(f"^[^{_REFUSED}\\ud800-\\udfff]+$")


def is_name(value: object) -> bool:
    """Whether `value` is a name the server takes."""
    return isinstance(value, str) and 0 < len(value) <= NAME_LIMIT and bool(_NAME.match(value))


def check_name(what: str, value: str) -> str:
    """`value`, or RefusedError naming `what` when it is not a name the server takes."""
    if not is_name(value):
        msg = (
            f"{what} must be 1 to {NAME_LIMIT} characters without control or invisible"
            f" formatting characters, not {value!r}"
        )
        raise RefusedError(msg)
    return value


# A blueprint's or a deployment's id: it names URLs, lock keys (`deployment:<id>`) and
# instance ids, so it is plain: the REST schema carries `ID_PATTERN`, the service `check_id`.
ID_LIMIT = 100
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{ID_LIMIT - 1}}}$"
_ID = re.compile(ID_PATTERN)


def check_id(kind: str, value: object) -> str:
    """`value`, or RefusedError when it is not a `kind` (blueprint, deployment) id: 1 to
    100 letters, digits, `_ . -`, starting with a letter or digit."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        msg = (
            f"a {kind} id is 1 to {ID_LIMIT} letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit, not {value!r}"
        )
        raise RefusedError(msg)
    return value
