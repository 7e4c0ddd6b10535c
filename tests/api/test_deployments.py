"""`/blueprints` and `/deployments` over real HTTP on a real SQLite store: upload, list,
read and delete blueprints; create, list, read and delete deployments; every refusal one
line with its status, and nothing stored; reads for viewers, writes for operators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from api.conftest import LiveApi
from api.test_tokens import make_token
from dalsegno.model.records import InstanceChange
from dalsegno.service.deployment_calls import DeploymentCalls
from dalsegno.service.executions import ExecutionService

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "examples" / "blueprints" / "three_tier.yaml"
SMALL = """\
description: a web tier on a network
inputs:
  webs:
    type: integer
    default: 2
node_templates:
  network:
    type: net
  web:
    type: server
    instances: {get_input: webs}
    properties:
      size: {get_input: webs}
    relationships:
      - type: depends_on
        target: network
"""


def upload(client: httpx.Client, blueprint_id: str = "small", source: str = SMALL) -> Any:
    answer = client.post("/blueprints", json={"id": blueprint_id, "source": source})
    assert answer.status_code == 201, answer.text
    return answer.json()


def create(client: httpx.Client, deployment_id: str = "web", **inputs: Any) -> Any:
    body = {"id": deployment_id, "blueprint_id": "small", "inputs": inputs}
    answer = client.post("/deployments", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def stored(service: ExecutionService) -> tuple[list[str], list[str]]:
    """The ids of every blueprint and every deployment in the store."""
    blueprints = [record.id for record in service.store.list_blueprints()]
    return blueprints, [record.id for record in service.store.list_deployments()]


def test_a_blueprint_is_uploaded_listed_read_and_deleted(client: httpx.Client) -> None:
    source = THREE_TIER.read_text()
    made = client.post(
        "/blueprints",
        json={"id": "three", "source": source, "base_dir": str(THREE_TIER.parent)},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["id"] == "three" and body["source"] == source
    assert body["node_templates"] == [
        "network",
        "db_vm",
        "app_vm",
        "database",
        "app",
        "load_balancer",
    ]
    assert [spec["name"] for spec in body["inputs"]][:2] == ["app_vms", "image"]
    # a relative operation path is made absolute against base_dir
    network = body["plan"]["node_templates"][0]
    assert network["operations"]["create"]["implementation"] == (
        f"{THREE_TIER.parent / 'cloud.py'}:create"
    )
    listed = client.get("/blueprints").json()
    assert [found["id"] for found in listed] == ["three"]
    assert "source" not in listed[0]
    assert client.get("/blueprints/three").json()["source"] == source
    deleted = client.delete("/blueprints/three")
    assert deleted.status_code == 200 and deleted.json() == {"id": "three", "deleted": True}
    assert client.get("/blueprints").json() == []
    gone = client.get("/blueprints/three")
    assert gone.status_code == 404 and gone.json() == {"error": "unknown blueprint: three"}


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("node_templates:\n  a:\n    type: x\n    instances: -1\n", "a.yaml:4: node_templates.a"),
        ("node_templates:\n  a: [unclosed\n", "a.yaml:3: (document): not valid YAML"),
        ("description: \x00\n", "a.yaml:1: (document): not valid YAML: unacceptable character"),
        ("node_templates:\n  a:\n    type: x\n    colour: red\n", "node_templates.a.colour"),
        (
            "node_templates:\n  a:\n    type: x\n    relationships:\n"
            "      - {type: depends_on, target: nowhere}\n",
            "nowhere",
        ),
    ],
)
def test_a_blueprint_that_is_not_valid_is_422_naming_line_and_field_and_stores_nothing(
    client: httpx.Client, service: ExecutionService, source: str, reason: str
) -> None:
    answer = client.post("/blueprints", json={"id": "bad", "source": source, "name": "a.yaml"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert reason in error and "\n" not in error
    assert stored(service) == ([], [])


def test_blueprint_refusals(client: httpx.Client, service: ExecutionService) -> None:
    upload(client)
    taken = client.post("/blueprints", json={"id": "small", "source": SMALL})
    assert taken.status_code == 409
    assert taken.json() == {"error": "blueprint 'small' already exists"}
    for body in (
        {"id": "a b", "source": SMALL},  # not an id
        {"id": "x", "source": SMALL, "colour": 1},  # an unknown field
        {"id": "x"},  # no source
        {"id": "x", "source": SMALL, "base_dir": "relative/dir"},
        {"id": "x", "source": "x" * (1024 * 1024 + 1)},  # over the blueprint's limit
    ):
        answer = client.post("/blueprints", json=body)
        assert answer.status_code == 422, (body.keys(), answer.text)
    too_big = client.post("/blueprints", json={"id": "x", "source": "x" * (3 * 1024 * 1024)})
    assert too_big.status_code == 413
    assert client.get("/blueprints/a%20b").status_code == 422
    assert client.delete("/blueprints/nope").status_code == 404
    assert stored(service) == (["small"], [])


def test_a_deployment_is_created_with_its_instances_read_listed_and_deleted(
    client: httpx.Client, service: ExecutionService
) -> None:
    upload(client)
    made = create(client, webs=3)
    assert made["id"] == "web" and made["blueprint_id"] == "small"
    assert made["inputs"] == {"webs": 3} and made["lock"] == "deployment:web"
    assert made["instance_states"] == {"uninitialized": 4}
    nodes = sorted(instance["node"] for instance in made["instances"])
    assert nodes == ["network", "web", "web", "web"]
    (network,) = [i for i in made["instances"] if i["node"] == "network"]
    for instance in made["instances"]:
        assert instance["id"].startswith(instance["node"] + "_")
        assert instance["runtime_properties"] == {}
        if instance["node"] == "web":
            assert instance["links"] == [
                {"type": "depends_on", "target_node": "network", "target_id": network["id"]}
            ]
    read = client.get("/deployments/web").json()
    assert [i["id"] for i in read["instances"]] == [i["id"] for i in made["instances"]]
    # input_texts: command-line texts read by the input's type; the default otherwise
    texts = {"id": "two", "blueprint_id": "small", "input_texts": {"webs": "1"}}
    assert client.post("/deployments", json=texts).json()["inputs"] == {"webs": 1}
    listed = client.get("/deployments").json()
    assert [(d["id"], d["instance_states"]) for d in listed] == [
        ("two", {"uninitialized": 2}),
        ("web", {"uninitialized": 4}),
    ]
    assert "instances" not in listed[0]
    # an instance that exists (not uninitialized, not deleted) keeps its deployment
    web = [i["id"] for i in made["instances"] if i["node"] == "web"]
    service.store.update_instances(
        [InstanceChange(web[0], state="started", set_properties={"ip": "10.0.0.7"})]
    )
    shown = client.get("/deployments/web").json()
    (started,) = [i for i in shown["instances"] if i["id"] == web[0]]
    assert started["state"] == "started" and started["runtime_properties"] == {"ip": "10.0.0.7"}
    refused = client.delete("/deployments/web")
    assert refused.status_code == 409
    assert "1 of its instances are not deleted" in refused.json()["error"]
    assert client.delete("/blueprints/small").status_code == 409  # used by deployments
    assert stored(service) == (["small"], ["two", "web"])
    forced = client.delete("/deployments/web", params={"force": "true"})
    assert forced.status_code == 200 and forced.json() == {"id": "web", "deleted": True}
    assert client.delete("/deployments/two").status_code == 200
    assert client.get("/deployments/web").status_code == 404
    assert service.store.list_instances("web") == []
    assert client.delete("/blueprints/small").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"id": "d", "blueprint_id": "nope"}, 404, "unknown blueprint: nope"),
        ({"id": "d", "blueprint_id": "small", "inputs": {"webs": "x"}}, 422, "inputs.webs"),
        ({"id": "d", "blueprint_id": "small", "inputs": {"other": 1}}, 422, "inputs.other"),
        ({"id": "d", "blueprint_id": "small", "inputs": {"webs": -1}}, 422, "inputs.webs"),
        ({"id": "d", "blueprint_id": "small", "input_texts": {"webs": "x"}}, 422, "inputs.webs"),
        (
            {"id": "d", "blueprint_id": "small", "inputs": {"webs": 1}, "input_texts": {}},
            201,
            "",
        ),
        (
            {"id": "d", "blueprint_id": "small", "inputs": {"webs": 1}, "input_texts": {"a": "1"}},
            422,
            "not both",
        ),
        ({"id": "-d", "blueprint_id": "small"}, 422, "id"),
        ({"id": "web", "blueprint_id": "small"}, 409, "deployment 'web' already exists"),
    ],
)
def test_deployment_refusals_change_nothing(
    client: httpx.Client,
    service: ExecutionService,
    body: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    upload(client)
    create(client)
    answer = client.post("/deployments", json=body)
    assert answer.status_code == status, answer.text
    if status != 201:
        assert reason in answer.json()["error"]
        assert stored(service) == (["small"], ["web"])
        assert len(service.store.list_instances("web")) == 3


def test_unknown_deployments_are_404(client: httpx.Client) -> None:
    for method in ("GET", "DELETE"):
        answer = client.request(method, "/deployments/nope")
        assert answer.status_code == 404
        assert answer.json() == {"error": "unknown deployment: nope"}


def test_viewers_read_operators_write(live: LiveApi, client: httpx.Client) -> None:
    upload(client)
    create(client)
    viewer = make_token(live, "vic", "viewer")
    operator = make_token(live, "olga", "operator")
    with live.client(viewer) as as_viewer, live.client(operator) as as_operator:
        for path in ("/blueprints", "/blueprints/small", "/deployments", "/deployments/web"):
            assert as_viewer.get(path).status_code == 200
        assert as_viewer.post("/blueprints", json={"id": "v", "source": SMALL}).status_code == 403
        assert as_viewer.delete("/deployments/web").status_code == 403
        assert as_operator.post("/blueprints", json={"id": "o", "source": SMALL}).status_code == 201
        assert as_operator.delete("/deployments/web").status_code == 200
    with live.client(None) as nobody:
        assert nobody.get("/deployments").status_code == 401


def test_an_execution_against_a_deployment_takes_its_lock_and_is_listed_with_it(
    client: httpx.Client, service: ExecutionService
) -> None:
    upload(client)
    create(client, "web")
    create(client, "other")

    def start(**body: Any) -> httpx.Response:
        return client.post("/executions", json={"workflow": "install", **body})

    first = start(deployment_id="web")
    assert first.status_code == 201, first.text
    made = first.json()
    assert made["workflow"] == "dalsegno.lifecycle:install"
    assert (made["deployment_id"], made["lock"], made["status"]) == (
        "web",
        "deployment:web",
        "pending",
    )
    second = start(deployment_id="web", params={"subgraph_retries": 1}).json()
    assert second["status"] == "queued"  # behind the first: one execution per deployment
    assert start(deployment_id="other").json()["status"] == "pending"
    unknown = start(deployment_id="nope")
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown deployment: nope"}
    assert start(deployment_id="a b").status_code == 422
    assert start().status_code == 422  # a bare name needs a deployment
    executions = DeploymentCalls(service.store).executions("web")
    assert [execution.id for execution in executions] == [second["id"], made["id"]]
    assert len(service.list_executions()) == 2 + 3  # the template's two, and these
