"""Workflows for the browser test of subgraphs (tests/browser/test_subgraphs.py).

- `boxes`: `prepare` -> `install` (retries 3: `configure` -> `inner` {`unpack`, `link`}
  -> `start`) -> `verify`. `configure` fails on its first run (the file `mark` is absent
  then), so `install` retries once and ends succeeded, "retry 1/3".
- `ticking_boxes`: a subgraph whose tasks take seconds (its box changes live).
- `big_boxes`: a chain of `before` tasks -> `install` (`n` tasks, `inner` subgraph of
  `n_inner` among them) -> a chain of `after` tasks: more than the page draws task by task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dalsegno import NonRecoverableError, operation, workflow


@operation(resumable=True)
def done(ctx: Any) -> dict[str, str]:
    return {"key": ctx.task_key}


@operation(resumable=True)
def first_time_fails(ctx: Any, mark: str) -> dict[str, bool]:
    if not Path(mark).exists():
        Path(mark).touch()
        msg = f"{ctx.task_key}: the first run fails"
        raise NonRecoverableError(msg)
    return {"ok": True}


@workflow(resumable=True)
def boxes(ctx: Any, mark: str) -> None:
    g = ctx.graph("main")
    install = g.subgraph("install", retries=3, retry_interval=0.0)
    configure = install.add(first_time_fails, key="configure", mark=mark)
    inner = install.subgraph("inner")
    inner.add(done, key="unpack")
    inner.add(done, key="link")
    install.sequence(configure, inner, install.add(done, key="start"))
    g.sequence(g.add(done, key="prepare"), install, g.add(done, key="verify"))
    g.execute()


@workflow(resumable=True)
def big_boxes(ctx: Any, before: int = 150, n: int = 120, n_inner: int = 40,
              after: int = 150) -> None:  # fmt: skip
    g = ctx.graph("main")
    install = g.subgraph("install", retries=2)
    head = install.add(done, key="fetch")
    inner = install.subgraph("inner")
    for i in range(n_inner):
        inner.add(done, key=f"unpack-{i:03d}")
    install.depend(inner, on=head)
    rest = [install.add(done, key=f"step-{i:03d}") for i in range(n - n_inner - 1)]
    for task in rest:
        install.depend(task, on=inner)
    chain_before = [g.add(done, key=f"pre-{i:03d}") for i in range(before)]
    chain_after = [g.add(done, key=f"post-{i:03d}") for i in range(after)]
    g.sequence(*chain_before, install, *chain_after)
    g.execute()


@operation(resumable=True)
def pause(ctx: Any, seconds: float) -> None:
    time.sleep(seconds)


@workflow(resumable=True)
def ticking_boxes(ctx: Any, n: int = 8, seconds: float = 0.5) -> None:
    """`first` -> `slow` (a chain of `n` tasks of `seconds` each) -> `last`: a subgraph
    whose state changes while the page is open."""
    g = ctx.graph("main")
    slow = g.subgraph("slow", retries=1)
    slow.sequence(*[slow.add(pause, key=f"tick{i}", seconds=seconds) for i in range(n)])
    g.sequence(g.add(done, key="first"), slow, g.add(done, key="last"))
    g.execute()
