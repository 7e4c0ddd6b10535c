"""`parse_blueprint`: a blueprint's YAML text to a validated `Blueprint`, or one line
saying where and why not (`<source>:<line>: <field.path>: <reason>`).

Three passes, each with one subject: `source.load` reads the YAML (lines, duplicate keys,
JSON values), `schema.validate_shape` its shape, and here what the shape cannot say:
names, references between templates, the operations of the lifecycle interface, the
inputs that `get_input` names, the templates that an output's `get_attribute` names, and
cycles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dalsegno.blueprints.inputs import (
    GET_INPUT,
    has_type,
    input_references,
    type_error,
    type_of,
)
from dalsegno.blueprints.outputs import attribute_problem, attribute_references
from dalsegno.blueprints.plan import find_cycle
from dalsegno.blueprints.references import absolute_reference, reference_problem
from dalsegno.blueprints.schema import (
    BlueprintModel,
    NodeTemplateModel,
    OperationModel,
    validate_shape,
)
from dalsegno.blueprints.source import Located, load
from dalsegno.model.blueprints import (
    NODE_OPERATIONS,
    RELATIONSHIP_OPERATIONS,
    Blueprint,
    InputSpec,
    NodeTemplate,
    OperationSpec,
    Relationship,
)
from dalsegno.model.definitions import check_task_options
from dalsegno.model.names import is_name

# template and input names: they make instance ids (`<node>_<6 hex>`) and `-i KEY=VALUE`
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
_NAME_RULE = "a name is a letter then up to 99 letters, digits, _ or -"


def parse_blueprint(
    text: str, *, source: str = "blueprint.yaml", base_dir: Path | None = None
) -> Blueprint:
    """The blueprint `text` describes; BlueprintError (one line) when it is not valid.
    A `path/file.py:function` operation is made absolute against `base_dir` (the
    blueprint file's directory; default the working directory)."""
    data, where = load(text, source)
    model = validate_shape(data, where)
    base = (base_dir or Path.cwd()).resolve()
    inputs = _inputs(model, where)
    templates: dict[str, NodeTemplate] = {}
    for name, template in model.node_templates.items():
        templates[name] = _template(name, template, inputs, base, where)
    _check_relationships(templates, where)
    outputs: dict[str, Any] = {}
    for name, output in model.outputs.items():
        at = ("outputs", name, "value")
        _check_get_inputs(output.value, at, inputs, where, in_outputs=True)
        for path, reference in attribute_references(output.value, at):
            problem = attribute_problem(reference, list(templates))
            if problem:
                where.fail(path, problem)
        outputs[name] = {"value": output.value, "description": output.description}
    return Blueprint(
        inputs=inputs,
        node_templates=templates,
        outputs=outputs,
        description=model.description,
    )


def _inputs(model: BlueprintModel, where: Located) -> dict[str, InputSpec]:
    specs: dict[str, InputSpec] = {}
    for name, spec in model.inputs.items():
        if not NAME.fullmatch(name):
            where.fail(("inputs", name), f"not a valid input name: {_NAME_RULE}")
        has_default = "default" in spec.model_fields_set
        type_name = spec.type or (type_of(spec.default) if has_default else "string")
        if has_default and spec.default is not None and not has_type(type_name, spec.default):
            where.fail(("inputs", name, "default"), type_error(type_name, spec.default))
        default = spec.default
        if type_name == "float" and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)  # `default: 0` of a float input is 0.0
        specs[name] = InputSpec(name, type_name, spec.description, has_default, default)
    return specs


def _template(
    name: str,
    model: NodeTemplateModel,
    inputs: dict[str, InputSpec],
    base: Path,
    where: Located,
) -> NodeTemplate:
    path = ("node_templates", name)
    if not NAME.fullmatch(name):
        where.fail(path, f"not a valid template name: {_NAME_RULE}")
    _check_get_inputs(model.properties, (*path, "properties"), inputs, where)
    instances = _instances(model.instances, (*path, "instances"), inputs, where)
    if model.agent is not None and not is_name(model.agent):
        where.fail((*path, "agent"), "not a valid queue name")
    context = _Context(inputs, base, where)
    operations = _specs(model.operations, (*path, "operations"), NODE_OPERATIONS, context)
    relationships: list[Relationship] = []
    for index, relationship in enumerate(model.relationships):
        at = (*path, "relationships", index)
        relationships.append(
            Relationship(
                type=relationship.type,
                target=relationship.target,
                source_operations=_specs(
                    relationship.source_operations,
                    (*at, "source_operations"),
                    RELATIONSHIP_OPERATIONS,
                    context,
                ),
                target_operations=_specs(
                    relationship.target_operations,
                    (*at, "target_operations"),
                    RELATIONSHIP_OPERATIONS,
                    context,
                ),
            )
        )
    return NodeTemplate(
        name=name,
        type=model.type,
        properties=model.properties,
        instances=instances,
        agent=model.agent,
        operations=operations,
        relationships=tuple(relationships),
    )


def _instances(
    value: Any, path: tuple[str, ...], inputs: dict[str, InputSpec], where: Located
) -> int | dict[str, str]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            where.fail(path, f"must be a whole number >= 0, not {value}")
        return value
    if isinstance(value, dict) and set(value) == {GET_INPUT}:
        _check_get_inputs(value, path, inputs, where)
        spec = inputs[value[GET_INPUT]]
        if spec.type != "integer":
            where.fail(path, f"the input {spec.name!r} must be of type integer, not {spec.type}")
        return {GET_INPUT: spec.name}
    where.fail(path, f"must be a whole number >= 0 or {{get_input: NAME}}, not {value!r}")


@dataclass(frozen=True, slots=True)
class _Context:
    inputs: dict[str, InputSpec]
    base: Path
    where: Located


def _specs(
    operations: dict[str, OperationModel],
    path: tuple[Any, ...],
    allowed: Sequence[str],
    context: _Context,
) -> dict[str, OperationSpec]:
    specs: dict[str, OperationSpec] = {}
    for name, operation in operations.items():
        at = (*path, name)
        if name not in allowed:
            expected = ", ".join(allowed)
            context.where.fail(at, f"unknown operation {name!r}: expected one of {expected}")
        problem = reference_problem(operation.implementation)
        if problem:
            context.where.fail((*at, "implementation"), problem)
        try:
            check_task_options(operation.retries, operation.retry_interval, operation.timeout)
        except ValueError as exc:
            field = str(exc).split(" ", 1)[0]
            context.where.fail((*at, field), str(exc))
        _check_get_inputs(operation.inputs, (*at, "inputs"), context.inputs, context.where)
        specs[name] = OperationSpec(
            implementation=absolute_reference(operation.implementation, context.base),
            inputs=operation.inputs,
            retries=operation.retries,
            retry_interval=operation.retry_interval,
            timeout=operation.timeout,
        )
    return specs


def _check_get_inputs(
    value: Any,
    path: tuple[Any, ...],
    inputs: dict[str, InputSpec],
    where: Located,
    *,
    in_outputs: bool = False,
) -> None:
    for at, _ in [] if in_outputs else attribute_references(value, path):
        where.fail(at, "get_attribute is evaluated in outputs only (an operation has ctx)")
    for at, reference in input_references(value, path):
        name = reference[GET_INPUT]
        if len(reference) != 1 or not isinstance(name, str):
            where.fail(at, "get_input stands alone and names one input: {get_input: NAME}")
        if name not in inputs:
            declared = ", ".join(inputs) or "none"
            where.fail(at, f"get_input of an undeclared input {name!r} (inputs: {declared})")


def _check_relationships(templates: dict[str, NodeTemplate], where: Located) -> None:
    for name, template in templates.items():
        targets: set[str] = set()
        containers = 0
        for index, relationship in enumerate(template.relationships):
            at = ("node_templates", name, "relationships", index)
            if relationship.target not in templates:
                known = ", ".join(templates)
                where.fail(
                    (*at, "target"),
                    f"no node template {relationship.target!r} (templates: {known})",
                )
            if relationship.target in targets:
                where.fail((*at, "target"), f"a second relationship to {relationship.target!r}")
            targets.add(relationship.target)
            if relationship.type == "contained_in":
                containers += 1
                if containers > 1:
                    where.fail((*at, "type"), "a second contained_in: an instance has one host")
    cycle = find_cycle(templates)
    if cycle:
        first = templates[cycle[0]]
        index = next(i for i, r in enumerate(first.relationships) if r.target == cycle[1])
        where.fail(
            ("node_templates", cycle[0], "relationships", index),
            f"a cycle of relationships: {' -> '.join(cycle)}",
        )
