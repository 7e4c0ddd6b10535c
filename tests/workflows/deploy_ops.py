"""Lifecycle operations for the deployment tests: each appends one line to the log file
its `log` input names (`<what> <instance> [<other>] <pid>`), so a test reads from the
operations' own log what ran, how often and in which order. `create` is not resumable
(an interrupted one fails at a takeover); the others are. `DEPLOY_OPS_DELAY` (seconds)
slows every operation, to give a kill something to interrupt."""

from __future__ import annotations

import os
import time
from typing import Any

from dalsegno import NonRecoverableError, operation


def _note(log: str, line: str) -> None:
    delay = float(os.environ.get("DEPLOY_OPS_DELAY", "0"))
    if delay:
        time.sleep(delay)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{line} {os.getpid()}\n")
        out.flush()
        os.fsync(out.fileno())


@operation
def create(ctx: Any, log: str) -> None:
    _note(log, f"create {ctx.instance.id}")
    ctx.instance.runtime_properties["address"] = f"10.0.0.{len(ctx.instance.id)}"
    ctx.instance.runtime_properties["node"] = ctx.node.name


@operation(resumable=True)
def configure(ctx: Any, log: str) -> None:
    _note(log, f"configure {ctx.instance.id}")
    ctx.instance.runtime_properties["configured_in"] = ctx.deployment.id


@operation(resumable=True)
def start(ctx: Any, log: str) -> None:
    _note(log, f"start {ctx.instance.id}")
    ctx.instance.runtime_properties["running"] = True


@operation(resumable=True)
def stop(ctx: Any, log: str) -> None:
    _note(log, f"stop {ctx.instance.id}")
    ctx.instance.runtime_properties["running"] = False


@operation(resumable=True)
def delete(ctx: Any, log: str) -> None:
    _note(log, f"delete {ctx.instance.id}")
    ctx.instance.runtime_properties.clear()


@operation(resumable=True)
def establish(ctx: Any, log: str) -> None:
    """On the source: records the target's address (read from the target's properties)."""
    target = ctx.target.instance
    _note(log, f"establish {ctx.source.instance.id} {target.id}")
    peers = ctx.instance.runtime_properties.setdefault("peers", {})
    peers[target.id] = target.runtime_properties.get("address")


@operation(resumable=True)
def unlink(ctx: Any, log: str) -> None:
    _note(log, f"unlink {ctx.source.instance.id} {ctx.target.instance.id}")
    ctx.instance.runtime_properties.get("peers", {}).pop(ctx.target.instance.id, None)


@operation(resumable=True)
def fail(ctx: Any, log: str) -> None:
    _note(log, f"fail {ctx.instance.id}")
    msg = f"{ctx.instance.id} refuses"
    raise NonRecoverableError(msg)


@operation(resumable=True)
def backup(ctx: Any, log: str, label: str = "nightly") -> None:
    _note(log, f"backup {ctx.instance.id} {label}")
    ctx.instance.runtime_properties["backup"] = label
