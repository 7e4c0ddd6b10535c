"""Workflows for the crash tests (tests/acceptance/test_crash_*.py).

Every operation appends one JSON line per run to the file `log` (a param): a test counts
the runs of each task from it, and sees whether a run was a resume (`ctx.resume`) and with
how many retries. A `block` operation touches `marker` when it begins, then waits while the
file `hold` exists, so a test can SIGKILL the process while it runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dalsegno import RecoverableError, operation, workflow

HOLD_LIMIT = 30.0  # seconds: a test that forgot its hold file fails instead of hanging


def _record(ctx: Any, log: str) -> None:
    line = {
        "key": ctx.task_key,
        "resume": ctx.resume,
        "retries": ctx.retries,
        "pid": os.getpid(),
    }
    with open(log, "a", encoding="utf-8") as runs:
        runs.write(json.dumps(line) + "\n")


def _block(ctx: Any, log: str, marker: str, hold: str) -> dict[str, str]:
    _record(ctx, log)
    Path(marker).touch()
    deadline = time.monotonic() + HOLD_LIMIT
    while os.path.exists(hold):
        if time.monotonic() > deadline:
            msg = f"held for more than {HOLD_LIMIT:g}s by {hold}"
            raise RuntimeError(msg)
        time.sleep(0.01)
    return {"done": ctx.task_key}


@operation
def step(ctx: Any, log: str) -> dict[str, str]:
    """Not resumable: it must never run twice unless a person resets it."""
    _record(ctx, log)
    return {"done": ctx.task_key}


@operation(resumable=True)
def redo(ctx: Any, log: str) -> dict[str, str]:
    """Resumable: safe to run again after an interruption."""
    _record(ctx, log)
    return {"done": ctx.task_key}


@operation(resumable=True)
def block(ctx: Any, log: str, marker: str, hold: str) -> dict[str, str]:
    return _block(ctx, log, marker, hold)


@operation
def block_once(ctx: Any, log: str, marker: str, hold: str) -> dict[str, str]:
    return _block(ctx, log, marker, hold)


@operation(retries=1, retry_interval=300)
def flaky(ctx: Any, log: str) -> dict[str, str]:
    """Fails on its very first run (the log has no earlier run of it), then succeeds."""
    _record(ctx, log)
    with open(log, encoding="utf-8") as runs:
        mine = [line for line in runs if json.loads(line)["key"] == ctx.task_key]
    if len(mine) == 1:
        msg = "first run fails"
        raise RecoverableError(msg)
    return {"done": ctx.task_key}


@workflow(resumable=True)
def chain(ctx: Any, log: str, resumable: bool = True) -> None:
    """a -> b -> c: for the crash points between tasks, around the graph and the end."""
    op = redo if resumable else step
    g = ctx.graph("main")
    g.sequence(*(g.add(op, key=key, log=log) for key in ("a", "b", "c")))
    g.execute()


@workflow(resumable=True)
def blocking(ctx: Any, log: str, marker: str, hold: str, resumable: bool = True) -> None:
    """a -> blk -> c, where blk blocks while `hold` exists."""
    g = ctx.graph("main")
    first = g.add(step, key="a", log=log)
    middle = g.add(block if resumable else block_once, key="blk", log=log, marker=marker, hold=hold)
    g.sequence(first, middle, g.add(step, key="c", log=log))
    g.execute()


@workflow(resumable=True)
def retrying(ctx: Any, log: str) -> None:
    """a -> flaky -> c: flaky fails once and waits 300 s for its retry."""
    g = ctx.graph("main")
    g.sequence(g.add(step, key="a", log=log), g.add(flaky, log=log), g.add(step, key="c", log=log))
    g.execute()


@workflow(resumable=True)
def remote(ctx: Any, log: str, marker: str, hold: str) -> None:
    """`local` runs here and blocks; `remote` goes to agent queue "web" at the same time."""
    g = ctx.graph("main")
    g.add(block, key="local", log=log, marker=marker, hold=hold)
    g.add(step, key="remote", agent="web", log=log)
    g.execute()


@workflow(resumable=False)
def oneshot(ctx: Any, log: str, marker: str, hold: str) -> None:
    """Not resumable, though its operations are."""
    g = ctx.graph("main")
    g.sequence(
        g.add(redo, key="a", log=log),
        g.add(block, key="blk", log=log, marker=marker, hold=hold),
        g.add(redo, key="c", log=log),
    )
    g.execute()


@workflow(resumable=True)
def drifting(ctx: Any, log: str, marker: str, hold: str) -> None:
    """a -> blk -> c; with CRASHY_EXTRA_TASK set, also x after c (code that changed)."""
    g = ctx.graph("main")
    first = g.add(step, key="a", log=log)
    middle = g.add(block, key="blk", log=log, marker=marker, hold=hold)
    last = g.add(step, key="c", log=log)
    g.sequence(first, middle, last)
    if os.environ.get("CRASHY_EXTRA_TASK"):
        g.depend(g.add(step, key="x", log=log), on=last)
    g.execute()
