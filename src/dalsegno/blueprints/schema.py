"""The shape of a blueprint's YAML, as pydantic models: which fields, of which JSON types.

Strict: no field a model does not name, and no coercion (`instances: "2"` is refused, not
read as 2). What the shape cannot say (names that must exist, cycles, input types) is
checked after, in `validate.py`. `explain` turns pydantic's first error into one line.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from dalsegno.blueprints.source import Located

_COLLECTIONS = ("inputs", "outputs", "properties", "operations", "relationships")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        # `properties:` with nothing under it is YAML's null: read it as empty
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if not (value is None and key in _COLLECTIONS)
            }
        return data


class InputModel(_Strict):
    type: Literal["string", "integer", "float", "boolean", "list", "dict"] | None = None
    description: str = ""
    default: Any = None


class OperationModel(_Strict):
    implementation: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    retries: int | None = None
    retry_interval: float | None = None
    timeout: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"implementation": data} if isinstance(data, str) else data


class RelationshipModel(_Strict):
    type: Literal["depends_on", "connected_to", "contained_in"]
    target: str
    source_operations: dict[str, OperationModel] = Field(default_factory=dict)
    target_operations: dict[str, OperationModel] = Field(default_factory=dict)


class NodeTemplateModel(_Strict):
    type: str
    properties: dict[str, Any] = Field(default_factory=dict)
    instances: Any = 1  # a count or {get_input: NAME}: checked in validate.py
    agent: str | None = None
    operations: dict[str, OperationModel] = Field(default_factory=dict)
    relationships: list[RelationshipModel] = Field(default_factory=list)


class OutputModel(_Strict):
    value: Any
    description: str = ""


class BlueprintModel(_Strict):
    description: str = ""
    inputs: dict[str, InputModel] = Field(default_factory=dict)
    node_templates: dict[str, NodeTemplateModel]
    outputs: dict[str, OutputModel] = Field(default_factory=dict)


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
}
_MODELS = {
    "OperationModel": "an operation reference (module:function) or a mapping",
    "RelationshipModel": "a mapping with type and target",
    "NodeTemplateModel": "a mapping",
    "InputModel": "a mapping",
    "OutputModel": "a mapping with a value",
    "BlueprintModel": "a mapping",
}


_FIELDS = sorted(
    {
        name
        for model in (InputModel, OperationModel, RelationshipModel, NodeTemplateModel)
        for name in model.model_fields
    }
    | set(OutputModel.model_fields)
    | set(BlueprintModel.model_fields)
)


def validate_shape(data: Any, where: Located) -> BlueprintModel:
    """The blueprint's model, or BlueprintError on its first misshapen field."""
    if not isinstance(data, dict):
        where.fail((), "a blueprint must be a mapping with node_templates")
    try:
        return BlueprintModel.model_validate(data)
    except ValidationError as exc:
        explain(exc, data, where)


def explain(exc: ValidationError, data: Any, where: Located) -> NoReturn:
    """Fail with the error of `exc` that comes first in the document."""
    found = [_located(error, data) for error in exc.errors(include_url=False)]
    # on one line, an unknown field says more than the missing one it was meant to be
    path, reason = min(
        found, key=lambda item: (where.line_of(item[0]), not item[1].startswith("unknown"))
    )
    where.fail(path, reason)


def _located(error: ErrorDetails, data: Any) -> tuple[list[str | int], str]:
    """The field of `data` that `error` names, and the reason, in the operator's words."""
    path: list[str | int] = []
    node = data
    # pydantic's loc also names the union member or the key that failed: skip what the
    # document does not hold, so the path is the one the operator wrote
    for part in error["loc"]:
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
            path.append(part)
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return [*path, error["loc"][-1]], "required, missing"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(path[-1]), _FIELDS, n=1) if path else []
        return path, "unknown field" + (f" (did you mean {close[0]}?)" if close else "")
    if kind == "literal_error":
        return path, f"must be one of {context.get('expected', '')}, not {_shown(node)}"
    if kind in ("model_type", "model_attributes_type"):
        model = _MODELS.get(str(context.get("class_name", "")), "a mapping")
        return path, f"must be {model}, not {_shown(node)}"
    if kind in _EXPECTED:
        return path, f"must be {_EXPECTED[kind]}, not {_shown(node)}"
    return path, str(error["msg"])


def _shown(value: Any) -> str:
    if value is None:
        return "empty (null)"
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "a string"}
    for kind, name in kinds.items():
        if type(value) is kind:
            return f"{value!r} ({name})"
    return "a list" if isinstance(value, list) else "a mapping"
