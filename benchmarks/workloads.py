"""Workflows the benchmarks run: no-op tasks in a chain or side by side."""

from __future__ import annotations

from dalsegno import operation, workflow


@operation(resumable=True)
def noop(ctx) -> None:
    return None


@workflow(resumable=True)
def chain(ctx, n: int = 2000) -> None:
    g = ctx.graph("main")
    g.sequence(*[g.add(noop, key=f"t{i}") for i in range(n)])
    g.execute()


@workflow(resumable=True)
def wide(ctx, n: int = 10000) -> None:
    g = ctx.graph("main")
    for i in range(n):
        g.add(noop, key=f"t{i}")
    g.execute()


@operation(resumable=True)
def pause(ctx, seconds: float) -> None:
    import time

    time.sleep(seconds)


@workflow(resumable=True)
def slow_chain(ctx, n: int = 100, seconds: float = 0.05) -> None:
    g = ctx.graph("main")
    g.sequence(*[g.add(pause, key=f"p{i}", seconds=seconds) for i in range(n)])
    g.execute()


@operation(resumable=True)
def maybe_fail(ctx, fail: bool = False) -> None:
    if fail:
        raise RuntimeError(f"{ctx.task_key} failed on purpose")


@workflow(resumable=True)
def layered(ctx, layers: int = 50, width: int = 100, fail: str = "") -> None:
    """`layers` layers of `width` tasks, each depending on two of the layer before; the task
    keyed `fail` fails (so its followers never run)."""
    g = ctx.graph("main")
    previous: list = []
    for i in range(layers):
        here = []
        for j in range(width):
            key = f"L{i:02d}-t{j:03d}"
            task = g.add(maybe_fail, key=key, fail=key == fail)
            if previous:
                g.depend(task, on=[previous[j], previous[(j + 1) % width]])
            here.append(task)
        previous = here
    g.execute()
