"""Reading `-p KEY=VALUE` and `--params JSON` into one params object."""

from __future__ import annotations

import json
from typing import Any

from dalsegno.model.errors import RefusedError


def _not_json(constant: str) -> Any:
    msg = f"{constant} is not JSON"
    raise ValueError(msg)


def parse_params(pairs: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    """`--params` first, then each `-p` on top; a VALUE is JSON when it parses as JSON."""
    params: dict[str, Any] = {}
    if params_json is not None:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            msg = f"malformed params: --params is not JSON: {exc}"
            raise RefusedError(msg) from None
        if not isinstance(loaded, dict):
            msg = f"malformed params: --params must be a JSON object, not {type(loaded).__name__}"
            raise RefusedError(msg)
        params.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            msg = f"malformed params: -p {pair!r} is not KEY=VALUE"
            raise RefusedError(msg)
        try:
            value: Any = json.loads(raw, parse_constant=_not_json)
        except ValueError:  # JSONDecodeError, or NaN/Infinity, which JSON does not have
            value = raw
        params[key.strip()] = value
    return params


def param_texts(pairs: tuple[str, ...]) -> dict[str, str]:
    """The command-line text of each `-p KEY=VALUE`: when its JSON reading does not fit the
    workflow parameter's annotation, the service reads the text by the annotation instead
    (`-p version=1.10` for a `str` stays "1.10")."""
    texts: dict[str, str] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        texts[key.strip()] = raw
    return texts
