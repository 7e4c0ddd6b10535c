"""The blueprint format: the example parses as written, and every mistake is refused with
one line naming the file, the line and the field (docs/blueprints.md)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dalsegno.blueprints import parse_blueprint
from dalsegno.model.blueprints import Blueprint
from dalsegno.model.errors import BlueprintError, RefusedError

EXAMPLE = Path(__file__).parents[2] / "examples" / "blueprints" / "three_tier.yaml"

MINIMAL = """\
inputs:
  count: {type: integer, default: 1}
node_templates:
  vm:
    type: cloud.vm
    instances: {get_input: count}
    operations:
      create: ops:create
"""


def parse(text: str, **kwargs: object) -> Blueprint:
    return parse_blueprint(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def refused(text: str) -> str:
    with pytest.raises(BlueprintError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_the_example_parses_with_its_templates_inputs_and_operations() -> None:
    blueprint = parse_blueprint(EXAMPLE.read_text(), source=str(EXAMPLE), base_dir=EXAMPLE.parent)
    assert list(blueprint.node_templates) == [
        "network",
        "db_vm",
        "app_vm",
        "database",
        "app",
        "load_balancer",
    ]
    assert blueprint.inputs["app_vms"].type == "integer"
    assert blueprint.inputs["app_vms"].default == 2
    assert blueprint.inputs["delay"].default == 0.0
    app = blueprint.node_templates["app"]
    assert app.container == "app_vm"
    assert app.properties == {"port": {"get_input": "app_port"}}
    assert [(r.type, r.target) for r in app.relationships] == [
        ("contained_in", "app_vm"),
        ("connected_to", "database"),
    ]
    cloud = EXAMPLE.parent.resolve() / "cloud.py"
    assert app.operations["create"].implementation == f"{cloud}:create"
    assert app.operations["configure"].timeout == 60.0
    assert app.relationships[1].source_operations["establish"].implementation == f"{cloud}:link"
    vm = blueprint.node_templates["app_vm"]
    assert vm.instances == {"get_input": "app_vms"}
    # the YAML anchor shares the VM's operations between both VM templates
    assert vm.operations["create"].inputs == {"ip": True}
    assert vm.operations["create"].retries == 2
    lb = blueprint.node_templates["load_balancer"]
    assert lb.relationships[1].source_operations["unlink"].inputs == {"role": "backend"}
    assert blueprint.outputs["endpoint"]["description"] == "where the load balancer listens"


def test_json_round_trip_gives_the_same_blueprint() -> None:
    blueprint = parse_blueprint(EXAMPLE.read_text(), base_dir=EXAMPLE.parent)
    stored = json.dumps(blueprint.to_json())
    assert Blueprint.from_json(json.loads(stored)) == blueprint
    minimal = parse(MINIMAL)
    assert Blueprint.from_json(json.loads(json.dumps(minimal.to_json()))) == minimal


def test_references_relative_to_the_blueprint_become_absolute(tmp_path: Path) -> None:
    text = MINIMAL.replace("ops:create", "lib/ops.py:create")
    blueprint = parse(text, base_dir=tmp_path)
    implementation = blueprint.node_templates["vm"].operations["create"].implementation
    assert implementation == f"{tmp_path.resolve()}/lib/ops.py:create"
    # a module reference stays as written
    assert parse(MINIMAL).node_templates["vm"].operations["create"].implementation == ("ops:create")


def test_defaults_and_short_forms() -> None:
    blueprint = parse(
        """\
        inputs:
          name: {default: web}
          ratio: {default: 0.5}
          free: {}
        node_templates:
          solo:
            type: t
            properties:
            operations:
              start: {implementation: a.b:c, inputs: {x: 1}, retries: -1, retry_interval: 2}
        """
    )
    assert blueprint.inputs["name"].type == "string"
    assert blueprint.inputs["ratio"].type == "float"
    assert blueprint.inputs["free"].has_default is False
    solo = blueprint.node_templates["solo"]
    assert solo.instances == 1
    assert solo.properties == {}
    assert solo.agent is None
    assert solo.operations["start"].retries == -1
    assert solo.operations["start"].retry_interval == 2.0


def test_dates_stay_text() -> None:
    blueprint = parse(
        """\
        node_templates:
          a: {type: t, properties: {release: 2024-01-01}}
        """
    )
    assert blueprint.node_templates["a"].properties == {"release": "2024-01-01"}


def test_a_blueprint_error_is_a_refusal() -> None:
    assert issubclass(BlueprintError, RefusedError)


BAD = [
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            tipe: x
        """,
        "blueprint.yaml:4: node_templates.vm.tipe: unknown field",
        id="unknown-key",
    ),
    pytest.param(
        """\
        nodes:
          vm: {type: t}
        """,
        "blueprint.yaml:1: nodes: unknown field",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: 12
        """,
        "blueprint.yaml:3: node_templates.vm.type: must be a string, not 12",
        id="wrong-type",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            properties: {a: 1}
        """,
        "blueprint.yaml:2: node_templates.vm.type: required, missing",
        id="missing-type",
    ),
    pytest.param(
        """\
        description: x
        """,
        "blueprint.yaml:1: node_templates: required, missing",
        id="missing-node-templates",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            relationships:
              - type: depends_on
                target: nowhere
        """,
        "blueprint.yaml:6: node_templates.vm.relationships[0].target: no node template"
        " 'nowhere' (templates: vm)",
        id="unknown-target",
    ),
    pytest.param(
        """\
        node_templates:
          a:
            type: t
            relationships: [{type: depends_on, target: b}]
          b:
            type: t
            relationships: [{type: connected_to, target: c}]
          c:
            type: t
            relationships: [{type: contained_in, target: a}]
        """,
        "blueprint.yaml:4: node_templates.a.relationships[0]: a cycle of relationships:"
        " a -> b -> c -> a",
        id="cycle",
    ),
    pytest.param(
        """\
        node_templates:
          a:
            type: t
            relationships: [{type: depends_on, target: a}]
        """,
        "blueprint.yaml:4: node_templates.a.relationships[0]: a cycle of relationships: a -> a",
        id="self-relationship",
    ),
    pytest.param(
        """\
        node_templates:
          h1: {type: t}
          h2: {type: t}
          app:
            type: t
            relationships:
              - {type: contained_in, target: h1}
              - {type: contained_in, target: h2}
        """,
        "blueprint.yaml:8: node_templates.app.relationships[1].type: a second contained_in",
        id="two-contained-in",
    ),
    pytest.param(
        """\
        node_templates:
          h1: {type: t}
          app:
            type: t
            relationships:
              - {type: depends_on, target: h1}
              - {type: connected_to, target: h1}
        """,
        "blueprint.yaml:7: node_templates.app.relationships[1].target: a second relationship"
        " to 'h1'",
        id="two-relationships-to-one-target",
    ),
    pytest.param(
        """\
        node_templates:
          h1: {type: t}
          app:
            type: t
            relationships:
              - {type: hosted_on, target: h1}
        """,
        "blueprint.yaml:6: node_templates.app.relationships[0].type: must be one of"
        " 'depends_on', 'connected_to' or 'contained_in', not 'hosted_on'",
        id="unknown-relationship-type",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create: a:b
              reboot: a:b
        """,
        "blueprint.yaml:6: node_templates.vm.operations.reboot: unknown operation 'reboot':"
        " expected one of create, configure, start, stop, delete",
        id="unknown-operation",
    ),
    pytest.param(
        """\
        node_templates:
          h: {type: t}
          vm:
            type: t
            relationships:
              - type: depends_on
                target: h
                target_operations:
                  create: a:b
        """,
        "blueprint.yaml:9: node_templates.vm.relationships[0].target_operations.create:"
        " unknown operation 'create': expected one of preconfigure, postconfigure,"
        " establish, unlink",
        id="unknown-relationship-operation",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create: just_a_function
        """,
        "blueprint.yaml:5: node_templates.vm.operations.create.implementation: malformed"
        " reference 'just_a_function'",
        id="reference-without-colon",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create:
                implementation: ops:not-a-name
        """,
        "blueprint.yaml:6: node_templates.vm.operations.create.implementation: malformed"
        " reference 'ops:not-a-name': 'not-a-name' is not a function name",
        id="reference-bad-function",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create: my module:create
        """,
        "blueprint.yaml:5: node_templates.vm.operations.create.implementation: malformed"
        " reference 'my module:create': 'my module' is not a module name",
        id="reference-bad-module",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create: 5
        """,
        "blueprint.yaml:5: node_templates.vm.operations.create: must be an operation"
        " reference (module:function) or a mapping, not 5",
        id="operation-not-a-reference",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create: {implementation: a:b, retries: -2}
        """,
        "blueprint.yaml:5: node_templates.vm.operations.create.retries: retries must be a"
        " whole number >= 0, or -1",
        id="bad-retries",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create: {implementation: a:b, timeout: 0}
        """,
        "blueprint.yaml:5: node_templates.vm.operations.create.timeout: timeout must be a"
        " number of seconds > 0",
        id="bad-timeout",
    ),
    pytest.param(
        """\
        inputs:
          size: {type: string}
        node_templates:
          vm:
            type: t
            properties:
              disk:
                size: {get_input: sise}
        """,
        "blueprint.yaml:8: node_templates.vm.properties.disk.size: get_input of an"
        " undeclared input 'sise' (inputs: size)",
        id="get-input-undeclared",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            operations:
              create:
                implementation: a:b
                inputs: {x: {get_input: nothing}}
        """,
        "blueprint.yaml:7: node_templates.vm.operations.create.inputs.x: get_input of an"
        " undeclared input 'nothing' (inputs: none)",
        id="get-input-undeclared-in-operation-inputs",
    ),
    pytest.param(
        """\
        inputs:
          a: {default: 1}
        node_templates:
          vm: {type: t}
        outputs:
          x: {value: {get_input: b}}
        """,
        "blueprint.yaml:6: outputs.x.value: get_input of an undeclared input 'b' (inputs: a)",
        id="get-input-undeclared-in-outputs",
    ),
    pytest.param(
        """\
        inputs:
          a: {default: 1}
        node_templates:
          vm:
            type: t
            properties: {p: {get_input: a, extra: 1}}
        """,
        "blueprint.yaml:6: node_templates.vm.properties.p: get_input stands alone",
        id="get-input-with-other-keys",
    ),
    pytest.param(
        """\
        inputs:
          count: {type: integer, default: two}
        node_templates:
          vm: {type: t}
        """,
        'blueprint.yaml:2: inputs.count.default: must be a whole number, not "two"',
        id="default-of-the-wrong-type",
    ),
    pytest.param(
        """\
        inputs:
          count: {type: int}
        node_templates:
          vm: {type: t}
        """,
        "blueprint.yaml:2: inputs.count.type: must be one of 'string', 'integer', 'float',"
        " 'boolean', 'list' or 'dict', not 'int'",
        id="unknown-input-type",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            instances: -1
        """,
        "blueprint.yaml:4: node_templates.vm.instances: must be a whole number >= 0, not -1",
        id="negative-instances",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            instances: "2"
        """,
        "blueprint.yaml:4: node_templates.vm.instances: must be a whole number >= 0 or"
        " {get_input: NAME}, not '2'",
        id="instances-as-text",
    ),
    pytest.param(
        """\
        inputs:
          n: {type: string, default: "2"}
        node_templates:
          vm:
            type: t
            instances: {get_input: n}
        """,
        "blueprint.yaml:6: node_templates.vm.instances: the input 'n' must be of type integer,"
        " not string",
        id="instances-from-a-text-input",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
          vm:
            type: u
        """,
        "blueprint.yaml:4: node_templates.vm: given twice (first on line 2)",
        id="duplicate-key",
    ),
    pytest.param(
        """\
        - type: t
        """,
        "blueprint.yaml:1: (document): a blueprint must be a mapping with node_templates",
        id="not-a-mapping",
    ),
    pytest.param(
        "",
        "blueprint.yaml:1: (document): a blueprint must be a mapping with node_templates",
        id="empty",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: [unclosed
          db: {type: t}
        """,
        "blueprint.yaml:4: (document): not valid YAML:",
        id="yaml-syntax",
    ),
    pytest.param(
        """\
        node_templates:
          vm: {type: t}
        ---
        node_templates:
          db: {type: t}
        """,
        "blueprint.yaml:3: (document): not valid YAML: expected a single document",
        id="two-documents",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            properties: {when: !!timestamp 2024-01-01}
        """,
        "blueprint.yaml:4: node_templates.vm.properties.when: a date is not a JSON value",
        id="not-json",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            properties: {1: one}
        """,
        "blueprint.yaml:4: node_templates.vm.properties: the key 1 is not a string",
        id="non-string-key",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            properties: {x: .nan}
        """,
        "blueprint.yaml:4: node_templates.vm.properties.x: nan is not a JSON number",
        id="nan",
    ),
    pytest.param(
        """\
        node_templates:
          "web server": {type: t}
        """,
        "blueprint.yaml:2: node_templates['web server']: not a valid template name",
        id="bad-template-name",
    ),
    pytest.param(
        'node_templates:\n  "vm\\n": {type: t}\n',
        "blueprint.yaml:2: node_templates['vm\\n']: not a valid template name",
        id="template-name-with-a-newline",
    ),
    pytest.param(
        """\
        node_templates:
          vm: {type: t, agent: "bad\\u0007queue"}
        """,
        "blueprint.yaml:2: node_templates.vm.agent: not a valid queue name",
        id="bad-agent",
    ),
    pytest.param(
        """\
        node_templates:
          vm:
            type: t
            relationships:
              type: depends_on
        """,
        "blueprint.yaml:4: node_templates.vm.relationships: must be a list, not a mapping",
        id="relationships-not-a-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_a_bad_blueprint_is_refused_in_one_line_naming_line_and_field(
    text: str, expected: str
) -> None:
    message = refused(text)
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 3000 + "]" * 3000, "blueprint.yaml:1: (document): nested too deeply to read"),
        (
            "node_templates: {a: {type: t, properties: {x: " + "[" * 70 + "]" * 70 + "}}}",
            "blueprint.yaml:1: node_templates.a.properties.x[0][0]",
        ),
        ("node_templates:\n  a: {type: t}\n\x00", "blueprint.yaml:3: (document): not valid"),
        (
            "node_templates: {a: {type: t, properties: {x: !!binary aGVsbG8=}}}",
            "blueprint.yaml:1: node_templates.a.properties.x: binary data is not a JSON value",
        ),
        (
            "node_templates: {a: {type: t, properties: {x: !!python/object:os.system ls}}}",
            "blueprint.yaml:1: (document): not valid YAML: could not determine a constructor",
        ),
    ],
)
def test_hostile_yaml_is_refused_in_one_line(text: str, expected: str) -> None:
    with pytest.raises(BlueprintError) as caught:
        parse_blueprint(text)
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_first_error_in_the_document_is_the_one_reported() -> None:
    message = refused(
        """\
        node_templates:
          a:
            type: 1
          b:
            tipe: x
        """
    )
    assert message.startswith("blueprint.yaml:3: node_templates.a.type:"), message


def test_the_source_name_is_the_one_given() -> None:
    with pytest.raises(BlueprintError, match=r"^bp/web\.yaml:1: "):
        parse_blueprint("[", source="bp/web.yaml")


def test_aliases_that_explode_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    lines.append("node_templates: {vm: {type: t, properties: {p: *a8}}}")
    with pytest.raises(BlueprintError, match="more than 100000 fields"):
        parse_blueprint("\n".join(lines))


def test_the_example_in_the_docs_is_the_example_file() -> None:
    docs = (EXAMPLE.parents[2] / "docs" / "blueprints.md").read_text()
    block = docs.split("The blueprint (the file has", 1)[1].split("```yaml\n", 1)[1]
    shown = parse_blueprint(block.split("```", 1)[0], base_dir=EXAMPLE.parent)
    example = parse_blueprint(EXAMPLE.read_text(), base_dir=EXAMPLE.parent)
    assert shown.node_templates == example.node_templates
    assert shown.outputs == example.outputs
    assert {name: (i.type, i.default) for name, i in shown.inputs.items()} == {
        name: (i.type, i.default) for name, i in example.inputs.items()
    }


def test_the_error_shown_in_the_docs_is_the_one_given() -> None:
    docs = (EXAMPLE.parents[2] / "docs" / "blueprints.md").read_text()
    shown = next(line for line in docs.splitlines() if line.startswith("three_tier.yaml:"))
    text = EXAMPLE.read_text().replace("        target: database\n", "        target: databse\n")
    with pytest.raises(BlueprintError) as caught:
        parse_blueprint(text, source="three_tier.yaml")
    assert str(caught.value) == shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "{get_attribute: [nowhere, ip]}",
            "blueprint.yaml:4: outputs.o.value: get_attribute of an unknown template 'nowhere'",
        ),
        (
            "{get_attribute: vm}",
            "blueprint.yaml:4: outputs.o.value: get_attribute stands alone and names a"
            " template and a key: [NODE, KEY]",
        ),
        (
            "[{get_attribute: [vm, ip, extra]}]",
            "blueprint.yaml:4: outputs.o.value[0]: get_attribute stands alone",
        ),
    ],
)
def test_bad_get_attribute_in_outputs(value: str, expected: str) -> None:
    text = f"node_templates:\n  vm: {{type: t}}\noutputs:\n  o: {{value: {value}}}\n"
    with pytest.raises(BlueprintError) as caught:
        parse_blueprint(text)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_get_attribute_outside_outputs_is_refused() -> None:
    message = refused(
        """\
        node_templates:
          vm: {type: t}
          app:
            type: t
            properties: {host: {get_attribute: [vm, ip]}}
        """
    )
    assert message == (
        "blueprint.yaml:5: node_templates.app.properties.host: get_attribute is evaluated in"
        " outputs only (an operation has ctx)"
    )
