"""Operations that run in a child process (`@operation(process=True)`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dalsegno import NonRecoverableError, operation, workflow


@operation(process=True)
def whoami(ctx: Any, note: str) -> dict[str, Any]:
    ctx.logger.info("running in pid %d", os.getpid())
    print("this print goes to stderr, not into the protocol")
    return {"pid": os.getpid(), "note": note, "resume": ctx.resume}


@operation(process=True)
def sleepy(ctx: Any, pidfile: str, seconds: float) -> None:
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(seconds)


@operation(process=True)
def refuses(ctx: Any) -> None:
    raise NonRecoverableError("no, never")


@operation(process=True)
def not_json(ctx: Any) -> object:
    return {1, 2}


@workflow(resumable=True)
def single(ctx: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    g = ctx.graph("main")
    g.add(f"procs:{op}", key="t", kwargs=kwargs)
    return g.execute()


@workflow(resumable=True)
def timed(ctx: Any, pidfile: str, seconds: float, timeout: float) -> None:
    g = ctx.graph("main")
    g.add(sleepy, key="t", pidfile=pidfile, seconds=seconds, timeout=timeout, retries=1,
          retry_interval=0)  # fmt: skip
    g.execute()
