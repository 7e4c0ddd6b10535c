"""A blueprint's inputs: their types, the values a deployment gives them, and `get_input`.

`{get_input: NAME}` may stand for any value of a template's properties, an operation's
inputs, a template's instance count or an output; `resolve_value` puts the deployment's
value in its place. Values given on a command line are text (`from_text`): each is read
by the input's type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from dalsegno.blueprints.source import format_path, one_line
from dalsegno.model.blueprints import Blueprint, InputSpec
from dalsegno.model.errors import BlueprintError

GET_INPUT = "get_input"
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "float": "a number",
    "boolean": "true or false",
    "list": "a list",
    "dict": "a mapping",
}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def type_of(value: Any) -> str:
    """The input type a default value has (used when an input names no type)."""
    for name, kinds in _TYPES.items():
        if name != "float" and isinstance(value, kinds) and not _is_bool_as_number(name, value):
            return name
    return "float" if isinstance(value, float) else "string"


def _is_bool_as_number(type_name: str, value: Any) -> bool:
    return isinstance(value, bool) and type_name in ("integer", "float")


def has_type(type_name: str, value: Any) -> bool:
    """Whether `value` is a value of the input type `type_name`."""
    return isinstance(value, _TYPES[type_name]) and not _is_bool_as_number(type_name, value)


def type_error(type_name: str, value: Any) -> str:
    shown = "null" if value is None else json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"must be {_NAMES[type_name]}, not {shown}"


def is_get_input(value: Any) -> bool:
    return isinstance(value, dict) and GET_INPUT in value


def input_references(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[Any, Any]]:
    """Each `{get_input: ...}` in a JSON value: (its path, the whole mapping)."""
    if is_get_input(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from input_references(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from input_references(item, (*path, index))


def resolve_value(value: Any, inputs: Mapping[str, Any]) -> Any:
    """`value` with each `{get_input: NAME}` replaced by the input's value."""
    if is_get_input(value):
        name = value[GET_INPUT]
        if not isinstance(name, str) or name not in inputs:
            msg = f"get_input: no input named {name!r}"
            raise BlueprintError(msg)
        return inputs[name]
    if isinstance(value, dict):
        return {key: resolve_value(item, inputs) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_value(item, inputs) for item in value]
    return value


def resolve_inputs(
    blueprint: Blueprint, given: Mapping[str, Any], *, from_text: bool = False
) -> dict[str, Any]:
    """The deployment's inputs: each declared input's given value, or else its default,
    in the blueprint's order. Refused: an input the blueprint does not declare, a
    required one missing, a value of the wrong type, a negative instance count."""
    for name in given:
        if name not in blueprint.inputs:
            declared = ", ".join(blueprint.inputs) or "none"
            where = format_path(("inputs", str(name)))
            msg = f"{where}: not an input of the blueprint (its inputs: {declared})"
            raise BlueprintError(one_line(msg))
    resolved: dict[str, Any] = {}
    for name, spec in blueprint.inputs.items():
        if name in given:
            resolved[name] = _given(spec, given[name], from_text=from_text)
        elif spec.has_default:
            resolved[name] = spec.default
        else:
            detail = f" ({spec.description})" if spec.description else ""
            msg = f"inputs.{name}: required, missing: give it a value{detail}"
            raise BlueprintError(msg)
    for template in blueprint.node_templates.values():
        if isinstance(template.instances, dict):
            name = template.instances[GET_INPUT]
            count = resolved[name]
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                msg = (
                    f"inputs.{name}: must be a whole number >= 0 (the instances of"
                    f" node_templates.{template.name}), not {count!r}"
                )
                raise BlueprintError(msg)
    return resolved


def _given(spec: InputSpec, value: Any, *, from_text: bool) -> Any:
    if from_text and isinstance(value, str):
        value = _from_text(spec, value)
    if not has_type(spec.type, value):
        as_json = " (as JSON)" if from_text and spec.type in ("list", "dict") else ""
        msg = f"inputs.{spec.name}: {type_error(spec.type, value)}{as_json}"
        raise BlueprintError(msg)
    return float(value) if spec.type == "float" else value


def _no_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _from_text(spec: InputSpec, text: str) -> Any:
    """A command line's text read as the input's type; left as text when it does not
    read (the type check then says what was expected)."""
    stripped = text.strip()
    if spec.type == "boolean":
        lowered = stripped.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    readers: dict[str, Any] = {
        "integer": int,
        "float": _finite_float,
        "list": _json,
        "dict": _json,
    }
    reader = readers.get(spec.type)
    if reader is None:
        return text
    try:
        return reader(stripped)
    except ValueError:
        return text


def _finite_float(text: str) -> float:
    number = float(text)
    if number - number != 0:  # NaN or infinite
        msg = f"{text} is not a finite number"
        raise ValueError(msg)
    return number


def _json(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constant)
