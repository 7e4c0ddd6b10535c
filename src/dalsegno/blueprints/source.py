"""A blueprint's YAML text as JSON data, with the line of every field it holds.

PyYAML composes the text into nodes that carry their marks; we read the lines from them,
refuse what YAML allows but a blueprint must not hold (a key given twice, a value that is
not JSON: a date, binary, a set, a non-string key, NaN), and build the value with the safe
constructor only. Dates stay strings: `release: 2024-01-01` means the text an operator
typed, not a timestamp.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from dalsegno.model.errors import BlueprintError

Path = tuple[str | int, ...]

FIELD_LIMIT = 100_000
DEPTH_LIMIT = 64  # JSON values this deep are a mistake, and every later walk recurses
_NOT_JSON = {"bytes": "binary data", "datetime": "a timestamp", "date": "a date"}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """The safe loader, without the implicit timestamp (dates are read as strings)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Sequence[str | int]) -> str:
    """`node_templates.app.relationships[0].target`; a key that is not a plain word is
    quoted (`properties['web server']`); the whole document is `(document)`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(document)"


def one_line(text: str) -> str:
    """`text` with every character that would break or hide a line escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, slots=True)
class Located:
    """The lines of a blueprint's fields: says where an error is, in one line."""

    source: str
    lines: dict[Path, int]

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of `path`, or of the nearest field that holds it."""
        key = tuple(path)
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)

    def fail(self, path: Sequence[str | int], reason: str) -> NoReturn:
        line = self.line_of(path)
        msg = f"{self.source}:{line}: {format_path(path)}: {reason}"
        raise BlueprintError(one_line(msg))


def load(text: str, source: str) -> tuple[Any, Located]:
    """The JSON value of `text` and the lines of its fields; BlueprintError if it is not
    one YAML document of JSON values."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        msg = f"{source}:{line}: (document): not valid YAML: {' '.join(str(exc).split())}"
        raise BlueprintError(one_line(msg)) from None
    try:
        node = loader.get_single_node()
        lines: dict[Path, int] = {}
        where = Located(source, lines)
        if node is not None:
            _walk(node, (), where)
            value = loader.construct_document(node)
        else:
            value = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        said = [part for part in (exc.context, exc.problem) if part]
        reason = " ".join(", ".join(said or ["not valid YAML"]).split())
        msg = f"{source}:{line}: (document): not valid YAML: {reason}"
        raise BlueprintError(one_line(msg)) from None
    except yaml.YAMLError as exc:
        msg = f"{source}:1: (document): not valid YAML: {' '.join(str(exc).split())}"
        raise BlueprintError(one_line(msg)) from None
    except RecursionError:
        msg = f"{source}:1: (document): nested too deeply to read"
        raise BlueprintError(one_line(msg)) from None
    finally:
        loader.dispose()
    _check_json(value, (), where)
    return value, where


def _walk(node: yaml.Node, path: Path, where: Located) -> None:
    """Record the line of each field under `node`; refuse a key given twice."""
    where.lines.setdefault(path, node.start_mark.line + 1)
    if len(path) > DEPTH_LIMIT:
        where.fail(path[:DEPTH_LIMIT], f"nested deeper than {DEPTH_LIMIT} levels")
    if len(where.lines) > FIELD_LIMIT:
        # aliases of aliases can spell an exponential document in a few lines
        where.fail(path, f"more than {FIELD_LIMIT} fields (are aliases repeating it?)")
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                where.fail(path, "a key must be a plain string, not a list or a mapping")
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                where.lines[(*path, key)] = line
                where.fail((*path, key), f"given twice (first on line {seen[key]})")
            seen[key] = line
            where.lines[(*path, key)] = line
            _walk(value_node, (*path, key), where)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), where)


def _check_json(value: Any, path: Path, where: Located) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            where.fail(path, f"{value} is not a JSON number")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, (*path, index), where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                where.fail(path, f"the key {key!r} is not a string: quote it")
            _check_json(item, (*path, key), where)
        return
    kind = _NOT_JSON.get(type(value).__name__, f"a {type(value).__name__}")
    where.fail(path, f"{kind} is not a JSON value: quote it as a string")
