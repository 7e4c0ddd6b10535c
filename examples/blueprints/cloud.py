"""A fake cloud: the operations of `three_tier.yaml`, managing files instead of machines.

Each resource is a JSON file `<cloud>/<deployment>/<instance id>.json`, each relationship
a file under `<cloud>/<deployment>/links/`. The cloud's directory is the deployment's
`cloud_dir` input, else $DALSEGNO_FAKE_CLOUD, else `./fake-cloud`. Every operation first
appends one JSON line to `<cloud>/operations.log` (op, instance, node, deployment, pid,
time; source and target for a relationship operation): a test reads from it which
operation ran when, and how many times. $DALSEGNO_FAKE_CLOUD_DELAY (seconds, or the
deployment's `delay` input) makes every operation take that long, so that an install can
be killed in the middle.

`create` and `delete` are not resumable (a real cloud would make a second machine, or
leave a half-deleted one): an interrupted one fails on resume until an operator checks.
`configure`, `start`, `stop` and the relationship operations are resumable: they set a
state, and setting it twice is the same as once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from dalsegno import NonRecoverableError, operation


def cloud_dir(ctx: Any) -> Path:
    """Where this deployment's fake cloud keeps its files."""
    given = (ctx.deployment.inputs or {}).get("cloud_dir") or os.environ.get(
        "DALSEGNO_FAKE_CLOUD", "./fake-cloud"
    )
    return Path(given).expanduser().resolve()


def _log(ctx: Any, op: str, **extra: Any) -> None:
    root = cloud_dir(ctx)
    root.mkdir(parents=True, exist_ok=True)
    entry = {
        "op": op,
        "instance": ctx.instance.id,
        "node": ctx.node.name,
        "deployment": ctx.deployment.id,
        "pid": os.getpid(),
        "time": time.time(),
        **extra,
    }
    # one write of one line to a file opened for appending: lines never interleave
    with open(root / "operations.log", "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")
    delay = float((ctx.deployment.inputs or {}).get("delay") or 0) or float(
        os.environ.get("DALSEGNO_FAKE_CLOUD_DELAY", "0") or 0
    )
    if delay > 0:
        time.sleep(delay)


def _resource(ctx: Any, instance_id: str | None = None) -> Path:
    return cloud_dir(ctx) / str(ctx.deployment.id) / f"{instance_id or ctx.instance.id}.json"


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    partial.replace(path)  # never half a file, whenever the process dies


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        msg = f"no resource {path.name} in the fake cloud: was it created?"
        raise NonRecoverableError(msg)
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _set_state(ctx: Any, state: str, *, missing_ok: bool = False) -> dict[str, Any]:
    path = _resource(ctx)
    if missing_ok and not path.is_file():
        return {"instance": ctx.instance.id, "state": state, "absent": True}
    record = _read(path)
    record["state"] = state
    _write(path, record)
    ctx.instance.runtime_properties["cloud_state"] = state
    return {"instance": ctx.instance.id, "state": state}


def _address(instance_id: str) -> str:
    digest = hashlib.sha256(instance_id.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{max(digest[2], 1)}"


@operation(resumable=False)
def create(ctx: Any, **settings: Any) -> dict[str, Any]:
    """Make the resource; a machine-like one (`ip: true` in the operation's inputs) gets
    an address, kept in the instance's runtime properties."""
    _log(ctx, "create")
    record: dict[str, Any] = {
        "node": ctx.node.name,
        "type": ctx.node.type,
        "properties": ctx.node.properties,
        "settings": settings,
        "state": "created",
    }
    if settings.get("ip"):
        record["ip"] = _address(ctx.instance.id)
        ctx.instance.runtime_properties["ip"] = record["ip"]
    _write(_resource(ctx), record)
    ctx.instance.runtime_properties["resource"] = str(_resource(ctx))
    ctx.instance.runtime_properties["cloud_state"] = "created"
    return {"instance": ctx.instance.id, "resource": str(_resource(ctx))}


@operation(resumable=True)
def configure(ctx: Any, **settings: Any) -> dict[str, Any]:
    _log(ctx, "configure")
    ctx.instance.runtime_properties["configured_with"] = settings
    return _set_state(ctx, "configured")


@operation(resumable=True)
def start(ctx: Any) -> dict[str, Any]:
    _log(ctx, "start")
    return _set_state(ctx, "started")


@operation(resumable=True)
def stop(ctx: Any) -> dict[str, Any]:
    _log(ctx, "stop")
    # nothing to stop when the create never made it (an uninstall after a partial install)
    return _set_state(ctx, "stopped", missing_ok=True)


@operation(resumable=False)
def delete(ctx: Any) -> dict[str, Any]:
    _log(ctx, "delete")
    path = _resource(ctx)
    absent = not path.is_file()  # never made, or already deleted: as a cloud's "not found"
    path.unlink(missing_ok=True)
    ctx.instance.runtime_properties.pop("ip", None)
    ctx.instance.runtime_properties["cloud_state"] = "deleted"
    return {"instance": ctx.instance.id, "deleted": str(path), "absent": absent}


def _link_file(ctx: Any) -> Path:
    name = f"{ctx.source.instance.id}--{ctx.target.instance.id}.json"
    return cloud_dir(ctx) / str(ctx.deployment.id) / "links" / name


def _pair(ctx: Any) -> dict[str, str]:
    return {"source": ctx.source.instance.id, "target": ctx.target.instance.id}


@operation(resumable=True)
def host_on(ctx: Any) -> dict[str, Any]:
    """preconfigure of `contained_in`, on the source: learn the host's address."""
    _log(ctx, "preconfigure", **_pair(ctx))
    host_ip = ctx.target.instance.runtime_properties.get("ip")
    ctx.source.instance.runtime_properties["host_ip"] = host_ip
    return {**_pair(ctx), "host_ip": host_ip}


@operation(resumable=True)
def link(ctx: Any, role: str = "client") -> dict[str, Any]:
    """establish: record the pair as a link file; a load balancer (role `backend`)
    also adds the target's address to its backends."""
    _log(ctx, "establish", **_pair(ctx))
    target_ip = ctx.target.instance.runtime_properties.get("host_ip")
    _write(_link_file(ctx), {**_pair(ctx), "role": role, "target_ip": target_ip})
    if role == "backend":
        backends = dict(ctx.source.instance.runtime_properties.get("backends") or {})
        backends[ctx.target.instance.id] = target_ip
        ctx.source.instance.runtime_properties["backends"] = backends
    return {**_pair(ctx), "role": role}


@operation(resumable=True)
def unlink(ctx: Any, role: str = "client") -> dict[str, Any]:
    """unlink: remove the pair's link file (and the backend of a load balancer)."""
    _log(ctx, "unlink", **_pair(ctx))
    _link_file(ctx).unlink(missing_ok=True)
    if role == "backend":
        backends = dict(ctx.source.instance.runtime_properties.get("backends") or {})
        backends.pop(ctx.target.instance.id, None)
        ctx.source.instance.runtime_properties["backends"] = backends
    return {**_pair(ctx), "role": role}
