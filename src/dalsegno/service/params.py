"""Params checked against the workflow function's annotations before anything is stored.

A start request's params must fit the workflow's signature: no unknown name, nothing
required missing, and each value of the type its annotation names: `str`, `int`, `float`,
`bool`, `list[...]`, `dict[str, ...]`, `tuple[...]`, `X | None`, `Literal[...]`, an `Enum`
(by value), a `TypedDict` or a dataclass (a JSON object of its fields). A parameter
without an annotation, or annotated with a type outside this list, takes any JSON value.

Values given as command-line text (`-p KEY=VALUE`) are read as JSON first, as the CLI
always did; when that does not fit the annotation, the text itself is read by the type:
`-p version=1.10` stays the string `"1.10"` for a `str`, `-p dry=yes` is `True` for a
`bool`, and `-p interval=abc` for a `float` is refused. Lists and objects are given as JSON.

The checked values are stored as they are: a dataclass or `TypedDict` parameter reaches the
workflow as the JSON object (a dict), an `Enum` one as its value, so that a resume, which
reads the params back from the store, passes exactly what the first run passed.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from dalsegno.model.errors import RefusedError

Annotation = Any
EMPTY = inspect.Parameter.empty
_WHOLE = re.compile(r"[+-]?[0-9]+")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
SHOWN = 60  # characters of a refused value quoted in the error


class Mismatch(Exception):
    """A value that does not fit its annotation; `where` names it (`hosts[2]`)."""

    def __init__(self, where: str, expected: str, value: Any, *, specific: bool = False) -> None:
        self.where = where
        self.specific = specific  # about the value's content, not its kind
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        if len(shown) > SHOWN:
            shown = shown[: SHOWN - 1] + "…"
        super().__init__(f"{where}: expected {expected}, got {shown}")


def check_params(
    func: Callable[..., Any], params: Any, texts: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The params of a start of `func`, checked (and text read by type); refused otherwise.

    `texts` holds the command-line text of the values given as `-p KEY=VALUE`.
    """
    if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
        msg = f"malformed params: expected a JSON object, got {type(params).__name__}"
        raise RefusedError(msg)
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        msg = f"malformed params: not JSON: {exc}"
        raise RefusedError(msg) from None
    signature = inspect.signature(func)
    try:
        signature.bind(None, **params)
    except TypeError as exc:
        msg = f"malformed params for {func.__name__}: {exc}"
        raise RefusedError(msg) from None
    hints = type_hints(func)
    extra = next(
        (p for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD),
        None,
    )
    checked: dict[str, Any] = {}
    for name, value in params.items():
        known = signature.parameters.get(name)
        if known is None or known.kind is inspect.Parameter.VAR_KEYWORD:
            known = extra
        annotation = hints.get(known.name, known.annotation) if known is not None else EMPTY
        try:
            checked[name] = fit(annotation, value, name, (texts or {}).get(name))
        except Mismatch as exc:
            msg = f"malformed params for {func.__name__}: {exc}"
            raise RefusedError(msg) from None
    return checked


def fit(annotation: Annotation, value: Any, where: str, text: str | None = None) -> Any:
    """`value` checked against `annotation`; with `text` (its command-line text), the text
    read by the annotation when the JSON value does not fit. Raises `Mismatch`."""
    try:
        return check(annotation, value, where)
    except Mismatch:
        if text is None:
            raise
        return check(annotation, from_text(annotation, text, where), where)


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of `func`; a name that cannot be resolved is left out (so
    its parameter takes any value), rather than refusing every start of the workflow."""
    target = inspect.unwrap(func)
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - a forward reference that names nothing, say
        found = {}
        for name, annotation in getattr(target, "__annotations__", {}).items():
            if not isinstance(annotation, str):
                found[name] = annotation
        return found


def _unchecked(annotation: Annotation) -> bool:
    return annotation in (EMPTY, Any, object) or isinstance(annotation, str | typing.TypeVar)


def check(annotation: Annotation, value: Any, where: str) -> Any:  # noqa: C901, PLR0911, PLR0912
    """`value` if it fits `annotation` (tuples come back as lists); raises `Mismatch`."""
    if _unchecked(annotation):
        return value
    origin: Any = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return check(args[0], value, where)
    if origin in (typing.Union, types.UnionType):
        return _check_union(args, value, where, annotation)
    if origin is typing.Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return value
        raise Mismatch(where, describe(annotation), value)
    if annotation is type(None):
        if value is None:
            return None
        raise Mismatch(where, "null", value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch(where, "a boolean (true or false)", value)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch(where, "a whole number", value)
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        raise Mismatch(where, "a number", value)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise Mismatch(where, "a string", value)
    container = origin or annotation
    if container in (list, tuple, set, frozenset) or _is_abc(container, "Sequence"):
        return _check_array(container, args, value, where)
    if container is dict or _is_abc(container, "Mapping"):
        return _check_object(args, value, where)
    if _is_enum(annotation):
        choices = [member.value for member in annotation]
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return value
        raise Mismatch(where, describe(annotation), value)
    if typing.is_typeddict(annotation):
        return _check_fields(annotation, value, where, set(annotation.__required_keys__))
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        required = {
            f.name
            for f in dataclasses.fields(annotation)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        return _check_fields(annotation, value, where, required)
    return value  # a type JSON cannot carry (a class of the workflow's own): not checked


def _is_abc(container: Any, name: str) -> bool:
    import collections.abc

    abc = getattr(collections.abc, name)
    return container is abc or (container is getattr(typing, name, None))


def _check_union(args: tuple[Any, ...], value: Any, where: str, annotation: Annotation) -> Any:
    if value is None and type(None) in args:
        return None
    choices = [choice for choice in args if choice is not type(None)]
    if len(choices) == 1:  # `X | None`: say what is wrong inside an X
        try:
            return check(choices[0], value, where)
        except Mismatch as exc:
            if exc.where != where or exc.specific:
                raise
            raise Mismatch(where, describe(annotation), value) from None
    for choice in choices:
        try:
            return check(choice, value, where)
        except Mismatch:
            continue
    raise Mismatch(where, describe(annotation), value)


def _check_array(container: Any, args: tuple[Any, ...], value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Mismatch(where, "a JSON array", value)
    if container is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise Mismatch(where, f"a JSON array of {len(args)} items", value, specific=True)
        return [
            check(item_type, item, f"{where}[{i}]")
            for i, (item_type, item) in enumerate(zip(args, value, strict=True))
        ]
    item_type = args[0] if args else Any
    return [check(item_type, item, f"{where}[{i}]") for i, item in enumerate(value)]


def _check_object(args: tuple[Any, ...], value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Mismatch(where, "a JSON object", value)
    value_type = args[1] if len(args) == 2 else Any
    return {key: check(value_type, item, f"{where}.{key}") for key, item in value.items()}


def _check_fields(kind: type, value: Any, where: str, required: set[str]) -> dict[str, Any]:
    """A `TypedDict` or dataclass given as a JSON object of its fields."""
    if not isinstance(value, dict):
        raise Mismatch(where, f"a JSON object of {kind.__name__}'s fields", value)
    hints = _field_hints(kind)
    missing = sorted(required - value.keys())
    if missing:
        expected = f"{kind.__name__} with {', '.join(missing)}"
        raise Mismatch(where, expected, value, specific=True)
    unknown = sorted(value.keys() - hints.keys())
    if unknown:
        expected = f"{kind.__name__}'s fields only (not {', '.join(unknown)})"
        raise Mismatch(where, expected, value, specific=True)
    return {key: check(hints[key], item, f"{where}.{key}") for key, item in value.items()}


def _field_hints(kind: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(kind)
    except Exception:  # noqa: BLE001 - unresolvable names: the fields take any value
        return dict.fromkeys(getattr(kind, "__annotations__", {}), Any)


def from_text(annotation: Annotation, text: str, where: str) -> Any:
    """Command-line `text` read as the type `annotation` names; raises `Mismatch`."""
    origin: Any = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return from_text(args[0], text, where)
    if origin in (typing.Union, types.UnionType):
        for choice in args:
            if choice is not type(None):
                try:
                    return check(choice, from_text(choice, text, where), where)
                except Mismatch:
                    continue
    elif origin is typing.Literal or _is_enum(annotation):
        choices = args if origin is typing.Literal else [m.value for m in annotation]
        names = [] if origin is typing.Literal else [m.name for m in annotation]
        for index, choice in enumerate(choices):
            if text in (str(choice), json.dumps(choice), *names[index : index + 1]):
                return choice
    elif annotation in TEXT_READERS:
        read = TEXT_READERS[annotation](text.strip() if annotation is not str else text)
        if read is not None:
            return read
    raise Mismatch(where, describe(annotation), text)


def _is_enum(annotation: Annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _read_bool(text: str) -> bool | None:
    word = text.lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def _read_int(text: str) -> int | None:
    return int(text) if _WHOLE.fullmatch(text) else None


def _read_float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


TEXT_READERS: dict[Any, Callable[[str], Any]] = {
    str: lambda text: text,
    bool: _read_bool,
    int: _read_int,
    float: _read_float,
}


def describe(annotation: Annotation) -> str:
    """How a person reads an annotation in an error: `a number`, `a string or null`."""
    origin: Any = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(choice) for choice in args)
    names = {
        bool: "a boolean (true or false)",
        int: "a whole number",
        float: "a number",
        str: "a string",
        type(None): "null",
    }
    if annotation in names:
        return names[annotation]
    if origin is typing.Literal or _is_enum(annotation):
        choices = args if origin is typing.Literal else [m.value for m in annotation]
        return "one of " + ", ".join(json.dumps(choice) for choice in choices)
    container = origin or annotation
    if container in (list, tuple, set, frozenset):
        return "a JSON array"
    if container is dict:
        return "a JSON object"
    return getattr(annotation, "__name__", str(annotation))


def run_settings(
    dry_run: bool, task_retries: str | None, task_retry_interval: str | None
) -> dict[str, Any]:
    """The settings of a start as texts (`dalsegno run --dry-run --task-retries N
    --task-retry-interval S`, the web UI's start form) as the keywords of
    `ExecutionService.start` and `create`, which check their ranges; a text that is not a
    number is refused here, an empty one is no setting."""
    settings: dict[str, Any] = {"dry_run": dry_run}
    if task_retries is not None and task_retries.strip():
        try:
            settings["task_retries"] = int(task_retries.strip())
        except ValueError:
            msg = f"task retries must be a whole number >= -1 (-1: forever), not {task_retries!r}"
            raise RefusedError(msg) from None
    if task_retry_interval is not None and task_retry_interval.strip():
        try:
            settings["task_retry_interval"] = float(task_retry_interval.strip())
        except ValueError:
            msg = (
                f"the task retry interval must be a number of seconds >= 0, "
                f"not {task_retry_interval!r}"
            )
            raise RefusedError(msg) from None
    return settings
