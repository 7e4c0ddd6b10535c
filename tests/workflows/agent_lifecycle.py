"""Lifecycle operations run on an agent (tests/agents/test_lifecycle_agents.py): each
appends one JSON line to the file its `log` input names (what ran, where, what it saw of
its instance), so a test reads from the operations' own log what ran, how often and on
which agent. `configure` waits while the file `hold` names exists (a kill's target)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dalsegno import operation


def _note(ctx: Any, log: str, op: str, **seen: Any) -> None:
    entry = {
        "op": op,
        "instance": ctx.instance.id,
        "state": ctx.instance.state,
        "agent": os.environ.get("DALSEGNO_TEST_AGENT", "manager"),
        "resume": ctx.resume,
        "node": ctx.node.name,
        "deployment": ctx.deployment.id,
        **seen,
    }
    with open(log, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
        out.flush()
        os.fsync(out.fileno())


@operation
def create(ctx: Any, log: str) -> None:
    _note(ctx, log, "create", properties=dict(ctx.instance.runtime_properties))
    props = ctx.instance.runtime_properties
    props["address"] = f"10.1.0.{len(ctx.instance.id) + len(ctx.node.name)}"
    props["created_on"] = os.environ.get("DALSEGNO_TEST_AGENT", "manager")
    props["scratch"] = {"left": "by create"}


@operation(resumable=True)
def configure(ctx: Any, log: str, hold: str = "") -> None:
    _note(ctx, log, "configure", properties=dict(ctx.instance.runtime_properties))
    if hold and Path(hold).exists():
        Path(f"{hold}.began").touch()
        while Path(hold).exists():
            time.sleep(0.05)
    props = ctx.instance.runtime_properties
    props["configured_with"] = props["address"]
    props.pop("scratch", None)  # removed, key by key, with the success


@operation(resumable=True)
def start(ctx: Any, log: str) -> None:
    _note(ctx, log, "start")
    ctx.instance.runtime_properties["running"] = True


@operation(resumable=True)
def establish(ctx: Any, log: str) -> None:
    """On the source: keeps the target's address (ctx.target, read with the attempt)."""
    target = ctx.target.instance
    _note(ctx, log, "establish", source=ctx.source.instance.id, target=target.id)
    ctx.instance.runtime_properties["peer"] = target.runtime_properties.get("address")
