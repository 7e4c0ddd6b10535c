"""Workflows with agent tasks for the manager side of the agent protocol (tests named
test_agents_*.py). The tests act as the agent themselves: they claim, report `started`
and deliver results over the store's agent queue or the REST API, so no operation body
here runs on the manager; `touch` runs in the test's own agent loop (end-to-end test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dalsegno import operation, workflow


@operation
def touch(ctx: Any, path: str = "") -> dict[str, Any]:
    """Not resumable: appends a line to `path` per run of its body."""
    if path:
        with open(path, "a", encoding="utf-8") as runs:
            runs.write(f"{ctx.task_key}\n")
    return {"key": ctx.task_key}


@operation(resumable=True)
def again(ctx: Any, path: str = "") -> dict[str, Any]:
    """Resumable."""
    return touch(ctx, path)


@operation(process=True)
def in_child(ctx: Any) -> None:
    """Declared process=True (the assignment says so)."""


@workflow(resumable=True)
def remote(
    ctx: Any, queue: str = "web", op: str = "touch", path: str = "", retries: int = 0
) -> Any:
    """local (manager) -> t (agent `queue`) -> after (manager)."""
    g = ctx.graph("main")
    first = g.add(touch, key="local")
    task = g.add(
        f"{Path(__file__)}:{op}",
        key="t",
        agent=queue,
        path=path,
        retries=retries,
        retry_interval=0.05,
    )
    last = g.add(touch, key="after")
    g.sequence(first, task, last)
    g.execute()
    return None


@workflow(resumable=True)
def fan(ctx: Any, count: int, queue: str = "web") -> None:
    """`count` independent agent tasks."""
    g = ctx.graph("main")
    for index in range(count):
        g.add(touch, key=f"n{index}", agent=queue)
    g.execute()
