"""Workflows for the fault suite (tests/faults/).

Every operation appends one JSON line per run to the file `log` (a param) before it does
anything else: a test reads it back to see that no operation ran twice. Operations that a
test must hold still wait while the file `hold` exists (a hold of "" does not wait).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dalsegno import operation, workflow

HOLD_LIMIT = 60.0  # seconds: a test that forgot its hold file fails instead of hanging


def _record(ctx: Any, log: str, **more: Any) -> None:
    line = {"execution": ctx.execution_id, "key": ctx.task_key, "resume": ctx.resume, **more}
    with open(log, "a", encoding="utf-8") as runs:
        runs.write(json.dumps(line) + "\n")
        runs.flush()
        os.fsync(runs.fileno())


def _hold(hold: str) -> None:
    deadline = time.monotonic() + HOLD_LIMIT
    while hold and os.path.exists(hold):
        if time.monotonic() > deadline:
            msg = f"held for more than {HOLD_LIMIT:g}s by {hold}"
            raise RuntimeError(msg)
        time.sleep(0.02)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _misbehave(how: str) -> Any:
    if how == "exit":
        sys.exit(3)
    if how == "interrupt":
        raise KeyboardInterrupt
    if how == "deep":
        return _nested(100_000)  # encoding it raises RecursionError
    if how == "huge":
        return "x" * (2 * 1024 * 1024)  # over the result limit
    if how == "nan":
        return float("nan")
    return {"ok": True}


@operation
def step(
    ctx: Any, log: str, hold: str = "", pause: float = 0.0, blob: Any = None
) -> dict[str, str]:
    """Not resumable: it must never run twice unless a person resets it."""
    _record(ctx, log)
    _hold(hold)
    time.sleep(pause)
    return {"done": ctx.task_key}


@operation(resumable=True)
def again(ctx: Any, log: str, pause: float = 0.0) -> dict[str, str]:
    """Resumable: running it again after an interruption is safe (the log says `resume`)."""
    _record(ctx, log)
    time.sleep(pause)
    return {"done": ctx.task_key}


@operation
def misbehave(ctx: Any, log: str, how: str) -> Any:
    _record(ctx, log, how=how)
    return _misbehave(how)


@operation(process=True)
def misbehave_in_child(ctx: Any, log: str, how: str) -> Any:
    _record(ctx, log, how=how)
    return _misbehave(how)


@operation
def noisy(ctx: Any, log: str, lines: int, size: int) -> int:
    """Logs `lines` lines of `size` characters each."""
    _record(ctx, log)
    for number in range(lines):
        ctx.logger.info("%d %s", number, "y" * size)
    return lines


@workflow(resumable=True)
def misbehaving(ctx: Any, log: str, how: str, child: bool = False) -> None:
    """`bad` misbehaves; `side` does not depend on it and runs to its end; `after` waits
    for `bad` and so never runs."""
    g = ctx.graph("main")
    bad = g.add(misbehave_in_child if child else misbehave, key="bad", log=log, how=how)
    g.add(step, key="side", log=log)
    after = g.add(step, key="after", log=log)
    g.depend(after, on=bad)
    g.execute()


@workflow(resumable=True)
def chain(ctx: Any, log: str, steps: int = 3, hold: str = "", pause: float = 0.0) -> None:
    """`steps` operations in a row; the first one waits while `hold` exists."""
    g = ctx.graph("main")
    tasks = [
        g.add(step, key=f"s{i}", log=log, hold=hold if i == 0 else "", pause=pause)
        for i in range(steps)
    ]
    g.sequence(*tasks)
    g.execute()


@workflow(resumable=True)
def mixed(
    ctx: Any,
    log: str,
    steps: int = 4,
    pause: float = 0.0,
    first: float | None = None,
    resumable_first: bool = False,
) -> None:
    """`steps` operations in a row, not resumable (`step`) and resumable (`again`) in turn
    (`resumable_first` swaps them); the first lasts `first` seconds, the others `pause`."""
    g = ctx.graph("main")
    tasks = [
        g.add(
            again if (i % 2 == 0) == resumable_first else step,
            key=f"m{i}",
            log=log,
            pause=pause if i or first is None else first,
        )
        for i in range(steps)
    ]
    g.sequence(*tasks)
    g.execute()


@workflow(resumable=True)
def chatty(ctx: Any, log: str, lines: int, size: int, tasks: int = 1) -> None:
    g = ctx.graph("main")
    for i in range(tasks):
        g.add(noisy, key=f"n{i}", log=log, lines=lines, size=size)
    g.execute()


@workflow(resumable=True)
def exits(ctx: Any, log: str, how: str = "exit") -> None:
    """The workflow function itself misbehaves after its graph ran."""
    g = ctx.graph("main")
    g.add(step, key="first", log=log)
    g.execute()
    _misbehave(how)


@workflow(resumable=True)
def long_key(ctx: Any, log: str, length: int) -> None:
    g = ctx.graph("main")
    g.add(step, key="k" * length, log=log)
    g.execute()


@workflow(resumable=True)
def big_kwargs(ctx: Any, log: str, size: int) -> None:
    g = ctx.graph("main")
    g.add(step, key="big", log=log, blob="b" * size)
    g.execute()


@workflow(resumable=True)
def takes(ctx: Any, blob: Any = None) -> None:
    """Takes any params (for the size limits of params)."""
    ctx.graph("main").execute()


def runs(log: str | Path) -> list[dict[str, Any]]:
    """The runs recorded in `log`, oldest first."""
    path = Path(log)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@workflow(resumable=True)
def loose(ctx: Any, **params: Any) -> None:
    """Takes any params by any names (for the size limit of params on the command line)."""
    ctx.graph("main").execute()
