"""The workload of the agent torture (tests/acceptance/test_agent_torture.py).

A wide graph of agent tasks of four kinds: short and long (1 to 2 s), resumable and not.
Each operation appends one JSON line to the file `log` when its body starts and one when
it ends (one `os.write` of a short line on an O_APPEND file: whole lines, even when the
process is killed), with its key, `ctx.resume`, its process (the agent) and the time: the
operations' own account of what ran, read by the test after the kills.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from dalsegno import operation, workflow

KINDS = ("short_resumable", "short_once", "long_resumable", "long_once")


def _note(ctx: Any, log: str, event: str, **extra: Any) -> None:
    line = {
        "event": event,
        "key": ctx.task_key,
        "resume": ctx.resume,
        "pid": os.getpid(),
        "at": time.time(),
        **extra,
    }
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _run(ctx: Any, log: str, seconds: float) -> dict[str, Any]:
    _note(ctx, log, "start")
    if seconds:
        time.sleep(seconds)
    _note(ctx, log, "end")
    return {"key": ctx.task_key}


@operation(resumable=True)
def short_resumable(ctx: Any, log: str, seconds: float = 0.0) -> dict[str, Any]:
    return _run(ctx, log, seconds)


@operation
def short_once(ctx: Any, log: str, seconds: float = 0.0) -> dict[str, Any]:
    return _run(ctx, log, seconds)


@operation(resumable=True)
def long_resumable(ctx: Any, log: str, seconds: float = 1.5) -> dict[str, Any]:
    return _run(ctx, log, seconds)


@operation
def long_once(ctx: Any, log: str, seconds: float = 1.5) -> dict[str, Any]:
    return _run(ctx, log, seconds)


@workflow(resumable=True)
def torture(ctx: Any, log: str, tasks: int = 500, long_every: int = 3) -> None:
    """`tasks` agent tasks on queue `torture`: every `long_every`-th one long (1 to 2 s),
    every other one resumable; a few chains, so results feed later starts."""
    ops = {
        "short_resumable": short_resumable,
        "short_once": short_once,
        "long_resumable": long_resumable,
        "long_once": long_once,
    }
    g = ctx.graph("main")
    previous = None
    for index in range(tasks):
        size = "long" if index % long_every == 0 else "short"
        kind = f"{size}_{'resumable' if index % 2 else 'once'}"
        seconds = 1.0 + (index % 11) / 10 if size == "long" else 0.0
        task = g.add(ops[kind], key=f"{kind}-{index}", agent="torture", log=log, seconds=seconds)
        if index % 25 == 0:
            previous = task  # a chain starts here
        elif index % 25 < 4 and previous is not None:
            g.depend(task, on=previous)
            previous = task
    g.execute()
