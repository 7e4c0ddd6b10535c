"""Workloads of benchmarks/agents.py: many independent no-op tasks."""

from __future__ import annotations

from typing import Any

from dalsegno import operation, workflow


@operation
def noop(ctx: Any) -> None:
    """Nothing: the figure is the orchestration's own cost."""


@workflow(resumable=True)
def wide(ctx: Any, count: int, queue: str | None = None) -> None:
    """`count` independent no-op tasks, on agents of `queue` (None: in the manager)."""
    g = ctx.graph("main")
    for index in range(count):
        g.add(noop, key=f"n{index}", agent=queue)
    g.execute()
