"""Workflows for the PostgreSQL tests with several managers (tests/acceptance/test_postgres_*).

Every operation appends one JSON line per run of its body to the file `log`: the
execution, the task, whether it was a resume, and the pid that ran it. A test reads from it
that no operation ran twice where it must not.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from dalsegno import operation, workflow


def _record(ctx: Any, log: str) -> None:
    line = {
        "execution": ctx.execution_id,
        "key": ctx.task_key,
        "resume": ctx.resume,
        "pid": os.getpid(),
    }
    with open(log, "a", encoding="utf-8") as runs:
        runs.write(json.dumps(line) + "\n")


@operation
def setup(ctx: Any, log: str) -> dict[str, str]:
    """Not resumable: it must never run twice."""
    _record(ctx, log)
    return {"done": ctx.task_key}


@operation(resumable=True)
def work(ctx: Any, log: str, pause: float) -> dict[str, str]:
    """Resumable: one interrupted by a lost manager runs again."""
    _record(ctx, log)
    time.sleep(pause)
    return {"done": ctx.task_key}


@operation
def once(ctx: Any, log: str, pause: float) -> dict[str, str]:
    """Not resumable, and slow enough to be running when the database goes away."""
    _record(ctx, log)
    time.sleep(pause)
    return {"done": ctx.task_key}


@workflow(resumable=True)
def wide(ctx: Any, log: str, width: int = 30, pause: float = 0.2, resumable: bool = True) -> None:
    """`setup`, then a graph of `width` independent tasks (`once` ones if not resumable)."""
    first = ctx.graph("setup")
    first.add(setup, key="setup", log=log)
    first.execute()
    g = ctx.graph("wide")
    op = work if resumable else once
    for index in range(width):
        g.add(op, key=f"w{index:03d}", log=log, pause=pause)
    g.execute()


@workflow(resumable=True)
def remote(ctx: Any, log: str, width: int = 8, pause: float = 0.3) -> None:
    """`setup` here, then `width` non-resumable operations on the agents of queue "web"."""
    first = ctx.graph("setup")
    first.add(setup, key="setup", log=log)
    first.execute()
    g = ctx.graph("remote")
    for index in range(width):
        g.add(once, key=f"r{index:03d}", agent="web", log=log, pause=pause)
    g.execute()
