"""A deployment's outputs: each output's value with `{get_input: NAME}` and
`{get_attribute: [NODE, KEY]}` put in place, from the inputs and the node instances.

`get_attribute` reads KEY from the runtime properties of NODE's instances (else from the
template's properties): the value itself for a template with one instance, a list in
instance order for several, null for none. It is evaluated in outputs only: an operation
reads its own and its relationship's sides through `ctx`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dalsegno.blueprints.inputs import resolve_value
from dalsegno.model.blueprints import Blueprint, NodeInstance

GET_ATTRIBUTE = "get_attribute"


def is_get_attribute(value: Any) -> bool:
    return isinstance(value, dict) and GET_ATTRIBUTE in value


def attribute_references(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Each `{get_attribute: ...}` in a JSON value: (its path, the whole mapping)."""
    if is_get_attribute(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from attribute_references(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from attribute_references(item, (*path, index))


def attribute_problem(reference: Mapping[str, Any], templates: Sequence[str]) -> str:
    """Why `{get_attribute: ...}` is malformed, or "" when it names a template's key."""
    target = reference[GET_ATTRIBUTE]
    shape_ok = (
        len(reference) == 1
        and isinstance(target, list)
        and len(target) == 2
        and all(isinstance(part, str) and part for part in target)
    )
    if not shape_ok:
        return "get_attribute stands alone and names a template and a key: [NODE, KEY]"
    if target[0] not in templates:
        return f"get_attribute of an unknown template {target[0]!r}"
    return ""


def resolve_outputs(
    blueprint: Blueprint, inputs: Mapping[str, Any], instances: Sequence[NodeInstance]
) -> dict[str, Any]:
    """Output name -> its value, for a deployment with these inputs and instances."""
    by_node: dict[str, list[NodeInstance]] = {}
    for instance in instances:
        by_node.setdefault(instance.node, []).append(instance)

    def attribute(node: str, key: str) -> Any:
        properties = resolve_value(blueprint.node_templates[node].properties, inputs)
        values = [
            instance.runtime_properties.get(key, properties.get(key))
            for instance in by_node.get(node, [])
        ]
        return values[0] if len(values) == 1 else (values or None)

    def evaluate(value: Any) -> Any:
        if is_get_attribute(value):
            node, key = value[GET_ATTRIBUTE]
            return attribute(node, key)
        if isinstance(value, dict):
            return {key: evaluate(item) for key, item in value.items()}
        if isinstance(value, list):
            return [evaluate(item) for item in value]
        return value

    return {
        name: evaluate(resolve_value(output["value"], inputs))
        for name, output in blueprint.outputs.items()
    }
