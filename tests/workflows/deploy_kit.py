"""A deployment for the lifecycle tests, built without the YAML parser: a network, `vms`
VMs connected to it, an app contained in each VM, a database that depends on the network,
and a load balancer connected to every app; every operation from `deploy_ops.py`."""

from __future__ import annotations

from pathlib import Path

from dalsegno.model.blueprints import (
    Blueprint,
    InputSpec,
    InstanceLink,
    NodeInstance,
    NodeTemplate,
    OperationSpec,
    Relationship,
)

OPS = Path(__file__).resolve().parent / "deploy_ops.py"
LOG = {"log": {"get_input": "log"}}


def op(name: str, **inputs: object) -> OperationSpec:
    return OperationSpec(f"{OPS}:{name}", {**LOG, **inputs})


NODE_OPS = {name: op(name) for name in ("create", "configure", "start", "stop", "delete")}
PAIR_OPS = {"establish": op("establish"), "unlink": op("unlink")}


def blueprint(vms: int = 2) -> Blueprint:
    def template(name: str, *relationships: Relationship, count: int = 1) -> NodeTemplate:
        return NodeTemplate(
            name,
            f"test.{name}",
            {"name": name, "log": {"get_input": "log"}},
            count,
            None,
            {**NODE_OPS, "backup": op("backup")},
            relationships,
        )

    return Blueprint(
        inputs={"log": InputSpec("log")},
        node_templates={
            "net": template("net"),
            "vm": template("vm", Relationship("connected_to", "net", PAIR_OPS), count=vms),
            "app": template("app", Relationship("contained_in", "vm")),
            "db": template("db", Relationship("depends_on", "net")),
            "lb": template("lb", Relationship("connected_to", "app", PAIR_OPS)),
        },
    )


def instances(deployment: str, vms: int = 2, prefix: str = "") -> list[NodeInstance]:
    net = NodeInstance(f"{prefix}net_000000", deployment, "net")
    made = [net]
    apps = []
    for n in range(vms):
        vm = NodeInstance(
            f"{prefix}vm_{n + 1:06x}",
            deployment,
            "vm",
            links=(InstanceLink("connected_to", "net", net.id),),
        )
        app = NodeInstance(
            f"{prefix}app_{n + 1:06x}",
            deployment,
            "app",
            links=(InstanceLink("contained_in", "vm", vm.id),),
            host_id=vm.id,
        )
        made += [vm, app]
        apps.append(app)
    made.append(
        NodeInstance(
            f"{prefix}db_000000",
            deployment,
            "db",
            links=(InstanceLink("depends_on", "net", net.id),),
        )
    )
    made.append(
        NodeInstance(
            f"{prefix}lb_000000",
            deployment,
            "lb",
            links=tuple(InstanceLink("connected_to", "app", app.id) for app in apps),
        )
    )
    return made


def lines(log: Path) -> list[list[str]]:
    """The log's lines, split (the pid last)."""
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def check_order(log: Path, deployment: list[NodeInstance]) -> None:
    """Relationship order in the log: every `create` of an instance comes after a `start`
    of each instance it links to (install), and no `delete` of an instance comes before
    the first `stop` of an instance linking to it (uninstall)."""
    seen = lines(log)
    position: dict[tuple[str, str], list[int]] = {}
    for index, line in enumerate(seen):
        position.setdefault((line[0], line[1]), []).append(index)
    for instance in deployment:
        for create in position.get(("create", instance.id), []):
            for link in instance.links:
                starts = [i for i in position.get(("start", link.target_id), []) if i < create]
                assert starts, f"{instance.id} created before {link.target_id} started"
        for link in instance.links:
            for delete in position.get(("delete", link.target_id), []):
                stops = position.get(("stop", instance.id), [])
                assert not stops or min(stops) < delete, (
                    f"{link.target_id} deleted before {instance.id} stopped"
                )
