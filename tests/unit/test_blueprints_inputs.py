"""A deployment's inputs: given values checked against the blueprint's declared types,
defaults filled in, command-line text read by type, and `get_input` resolved."""

from __future__ import annotations

import textwrap

import pytest

from dalsegno.blueprints import parse_blueprint, resolve_inputs, resolve_value
from dalsegno.model.blueprints import Blueprint
from dalsegno.model.errors import BlueprintError

TEXT = """\
inputs:
  count: {type: integer, default: 2}
  name: {type: string, description: the site's name}
  ratio: {type: float, default: 1}
  debug: {type: boolean, default: false}
  zones: {type: list, default: [a, b]}
  tags: {type: dict, default: {}}
node_templates:
  vm:
    type: t
    instances: {get_input: count}
    properties:
      site: {get_input: name}
      nested: [{zones: {get_input: zones}}, 3]
"""


@pytest.fixture
def blueprint() -> Blueprint:
    return parse_blueprint(textwrap.dedent(TEXT))


def test_defaults_fill_what_is_not_given_in_declared_order(blueprint: Blueprint) -> None:
    resolved = resolve_inputs(blueprint, {"name": "paris"})
    assert list(resolved) == ["count", "name", "ratio", "debug", "zones", "tags"]
    assert resolved == {
        "count": 2,
        "name": "paris",
        "ratio": 1.0,
        "debug": False,
        "zones": ["a", "b"],
        "tags": {},
    }
    assert isinstance(resolved["ratio"], float)


def test_given_values_of_the_right_type(blueprint: Blueprint) -> None:
    given = {"name": "x", "count": 0, "ratio": 2, "debug": True, "zones": [], "tags": {"a": 1}}
    resolved = resolve_inputs(blueprint, given)
    assert resolved == {**given, "ratio": 2.0}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"name": "x", "count": "3"}, 'inputs.count: must be a whole number, not "3"'),
        ({"name": "x", "count": True}, "inputs.count: must be a whole number, not true"),
        ({"name": "x", "ratio": "fast"}, 'inputs.ratio: must be a number, not "fast"'),
        ({"name": "x", "debug": 1}, "inputs.debug: must be true or false, not 1"),
        ({"name": "x", "zones": "a"}, 'inputs.zones: must be a list, not "a"'),
        ({"name": "x", "tags": []}, "inputs.tags: must be a mapping, not []"),
        ({"name": None}, "inputs.name: must be a string, not null"),
        ({}, "inputs.name: required, missing: give it a value (the site's name)"),
        (
            {"name": "x", "cuont": 3},
            "inputs.cuont: not an input of the blueprint (its inputs: count, name, ratio,"
            " debug, zones, tags)",
        ),
        (
            {"name": "x", "count": -1},
            "inputs.count: must be a whole number >= 0 (the instances of"
            " node_templates.vm), not -1",
        ),
    ],
)
def test_bad_inputs_are_refused_in_one_line(
    blueprint: Blueprint, given: dict[str, object], expected: str
) -> None:
    with pytest.raises(BlueprintError) as caught:
        resolve_inputs(blueprint, given)
    assert str(caught.value) == expected


def test_an_unknown_input_with_a_newline_is_named_on_one_line(blueprint: Blueprint) -> None:
    with pytest.raises(BlueprintError) as caught:
        resolve_inputs(blueprint, {"name": "x", "a\nb": 1})
    assert str(caught.value).startswith("inputs['a\\nb']: not an input of the blueprint")


def test_text_from_a_command_line_is_read_by_type(blueprint: Blueprint) -> None:
    given = {
        "name": "42",
        "count": " 5 ",
        "ratio": "0.25",
        "debug": "yes",
        "zones": '["x", "y"]',
        "tags": '{"tier": "web"}',
    }
    resolved = resolve_inputs(blueprint, given, from_text=True)
    assert resolved == {
        "name": "42",
        "count": 5,
        "ratio": 0.25,
        "debug": True,
        "zones": ["x", "y"],
        "tags": {"tier": "web"},
    }
    for text, value in [("true", True), ("False", False), ("no", False), ("on", True)]:
        assert (
            resolve_inputs(blueprint, {"name": "a", "debug": text}, from_text=True)["debug"]
            is value
        )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"count": "two"}, 'inputs.count: must be a whole number, not "two"'),
        ({"count": "2.5"}, 'inputs.count: must be a whole number, not "2.5"'),
        ({"ratio": "nan"}, 'inputs.ratio: must be a number, not "nan"'),
        ({"debug": "maybe"}, 'inputs.debug: must be true or false, not "maybe"'),
        ({"zones": "[1,"}, 'inputs.zones: must be a list, not "[1," (as JSON)'),
        ({"zones": "{}"}, "inputs.zones: must be a list, not {} (as JSON)"),
        ({"tags": "[NaN]"}, 'inputs.tags: must be a mapping, not "[NaN]" (as JSON)'),
    ],
)
def test_text_that_does_not_read_as_its_type_is_refused(
    blueprint: Blueprint, given: dict[str, str], expected: str
) -> None:
    with pytest.raises(BlueprintError) as caught:
        resolve_inputs(blueprint, {"name": "a", **given}, from_text=True)
    assert str(caught.value) == expected


def test_resolve_value_replaces_get_input_anywhere(blueprint: Blueprint) -> None:
    inputs = resolve_inputs(blueprint, {"name": "paris"})
    properties = blueprint.node_templates["vm"].properties
    assert resolve_value(properties, inputs) == {
        "site": "paris",
        "nested": [{"zones": ["a", "b"]}, 3],
    }
    assert resolve_value({"get_input": "count"}, inputs) == 2
    assert properties["site"] == {"get_input": "name"}  # the blueprint is left as it was
    with pytest.raises(BlueprintError, match="get_input: no input named 'other'"):
        resolve_value({"a": {"get_input": "other"}}, inputs)
