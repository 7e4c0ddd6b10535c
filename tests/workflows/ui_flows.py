"""Workflows for the web UI's browser tests (tests/browser).

- `fixable`: `first` -> `gate` -> `last`, and `side` beside them. `gate` fails while the
  file `flag` exists, so the execution ends failed (first green, gate red, last grey) until
  a person removes the file and resumes it from the browser.
- `slow`: a chain of short tasks that takes `steps * pause` seconds: one to cancel.
- `hostile`: an operation whose error, log line and task key are markup; the pages must
  show them as text.
- `wide`: `n` independent tasks (the paged, collapsed view).
- `fan`: `start` -> `n` tasks -> `end` (a graph drawn whole, its tall column wrapped).
- `layered`, `deep`: large graphs with one failed task (drawn as groups, folded in bands).
- `ticking`: a slow chain whose colours change while the page is open.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dalsegno import NonRecoverableError, operation, workflow

SCRIPT = "<script>alert(1)</script>"


@operation(resumable=True)
def ok(ctx: Any, value: int = 0) -> dict[str, int]:
    ctx.logger.info("ok %s", value)
    return {"value": value}


@operation
def gate(ctx: Any, flag: str) -> dict[str, bool]:
    if Path(flag).exists():
        ctx.logger.warning("the flag %s is still there", flag)
        msg = f"blocked: {flag} exists"
        raise NonRecoverableError(msg)
    return {"passed": True}


@operation(resumable=True)
def pause(ctx: Any, seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}


@operation
def markup(ctx: Any) -> None:
    ctx.logger.error("log line %s", SCRIPT)
    raise NonRecoverableError(SCRIPT)


@workflow(resumable=True)
def fixable(ctx: Any, flag: str) -> None:
    g = ctx.graph("main")
    first = g.add(ok, key="first", value=1)
    checked = g.add(gate, key="gate", flag=flag)
    last = g.add(ok, key="last", value=3)
    g.add(ok, key="side", value=4)
    g.sequence(first, checked, last)
    g.execute()


@workflow(resumable=True)
def slow(ctx: Any, steps: int = 40, seconds: float = 0.25) -> None:
    g = ctx.graph("main")
    g.sequence(*[g.add(pause, key=f"step-{i:02d}", seconds=seconds) for i in range(steps)])
    g.execute()


@workflow(resumable=True)
def hostile(ctx: Any) -> None:
    g = ctx.graph("main")
    g.add(markup, key="<b>bold</b>")
    g.execute()


@workflow(resumable=True)
def wide(ctx: Any, n: int = 1000) -> None:
    g = ctx.graph("main")
    for i in range(n):
        g.add(ok, key=f"t{i:05d}", value=i)
    g.execute()


@workflow(resumable=True)
def fan(ctx: Any, n: int = 298) -> None:
    g = ctx.graph("main")
    start = g.add(ok, key="start")
    middle = [g.add(ok, key=f"m{i:03d}", value=i) for i in range(n)]
    end = g.add(ok, key="end")
    for task in middle:
        g.depend(task, on=start)
    g.depend(end, on=middle)
    g.execute()


@operation(resumable=True)
def step(ctx: Any, fail: bool = False, seconds: float = 0.0) -> dict[str, bool]:
    if seconds:
        time.sleep(seconds)
    if fail:
        msg = f"{ctx.task_key} failed on purpose"
        raise NonRecoverableError(msg)
    return {"ok": True}


@workflow(resumable=True)
def layered(ctx: Any, layers: int = 50, width: int = 100, fail: str = "") -> None:
    """`layers` layers of `width` tasks; each depends on two of the layer before. The task
    keyed `fail` fails, so its followers never run."""
    g = ctx.graph("main")
    previous: list[Any] = []
    for i in range(layers):
        here = []
        for j in range(width):
            key = f"L{i:02d}-t{j:03d}"
            task = g.add(step, key=key, fail=key == fail)
            if previous:
                g.depend(task, on=[previous[j], previous[(j + 1) % width]])
            here.append(task)
        previous = here
    g.execute()


@workflow(resumable=True)
def deep(ctx: Any, n: int = 290, fail_at: int = -1) -> None:
    """A chain of `n` tasks; the one at `fail_at` fails."""
    g = ctx.graph("main")
    g.sequence(*[g.add(step, key=f"c{i:04d}", fail=i == fail_at) for i in range(n)])
    g.execute()


@workflow(resumable=True)
def ticking(ctx: Any, n: int = 40, seconds: float = 0.5) -> None:
    """A chain of `n` tasks of `seconds` each: an execution whose colours change live."""
    g = ctx.graph("main")
    g.sequence(*[g.add(step, key=f"tick{i:03d}", seconds=seconds) for i in range(n)])
    g.execute()
