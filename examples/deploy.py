"""A deployment that fails half-way, is fixed, and is resumed where it stopped.

    dalsegno run examples/deploy.py:deploy -p hosts=3

`configure_dns` fails until the file `$DALSEGNO_HOME/dns-unlocked` exists (the "fix").
After the fix, `dalsegno executions resume ID` runs only what is left: the VMs that were
created are kept, never created twice.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dalsegno import NonRecoverableError, operation, workflow

HOME = Path(os.environ.get("DALSEGNO_HOME") or Path.home() / ".dalsegno")
UNLOCKED = HOME / "dns-unlocked"


@operation(resumable=True, retries=2, retry_interval=0.2)
def create_vm(ctx, name: str, size: int = 1) -> dict:
    """Idempotent: a real one would look the VM up by `ctx.idempotency_key` first."""
    ctx.logger.info("creating %s (size %d)", name, size)
    time.sleep(0.3)
    return {"name": name, "ip": f"10.0.0.{10 + int(name[2:])}"}


@operation
def configure_dns(ctx, zone: str) -> dict:
    if not UNLOCKED.exists():
        raise NonRecoverableError(f"zone {zone} is locked: create {UNLOCKED} to unlock it")
    ctx.logger.info("zone %s updated", zone)
    return {"zone": zone}


@operation(resumable=True)
def install_app(ctx, version: str) -> dict:
    ctx.logger.info("installing app %s", version)
    time.sleep(0.2)
    return {"version": version}


@workflow(resumable=True)
def deploy(ctx, hosts: int = 3, version: str = "1.0") -> None:
    g = ctx.graph("main")
    vms = [g.add(create_vm, key=f"vm{i}", name=f"vm{i}") for i in range(hosts)]
    dns = g.add(configure_dns, zone="example.test")
    app = g.add(install_app, key="app", version=version)
    g.depend(dns, on=vms)
    g.depend(app, on=dns)
    g.execute()
