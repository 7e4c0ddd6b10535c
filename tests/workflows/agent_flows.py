"""Operations and workflows for the agent tests (tests/agents/).

Every operation appends one JSON line per run of its body to the file `log` (a param):
task key, `ctx.resume`, retries, pid and the agent's name (env DALSEGNO_TEST_AGENT), so a
test proves "ran exactly once" and sees where. A blocking operation touches `marker` when
it begins, then waits while the file `hold` exists.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dalsegno import NonRecoverableError, OperationRetry, RecoverableError, operation, workflow

HOLD_LIMIT = 30.0  # seconds: a test that forgot its hold file fails instead of hanging


def _record(ctx: Any, log: str, **extra: Any) -> None:
    line = {
        "key": ctx.task_key,
        "resume": ctx.resume,
        "retries": ctx.retries,
        "pid": os.getpid(),
        "agent": os.environ.get("DALSEGNO_TEST_AGENT", ""),
        "at": time.time(),
        **extra,
    }
    with open(log, "a", encoding="utf-8") as runs:
        runs.write(json.dumps(line) + "\n")


def _hold(marker: str, hold: str) -> None:
    Path(marker).touch()
    deadline = time.monotonic() + HOLD_LIMIT
    while os.path.exists(hold):
        if time.monotonic() > deadline:
            msg = f"held for more than {HOLD_LIMIT:g}s by {hold}"
            raise RuntimeError(msg)
        time.sleep(0.01)


@operation
def noop(ctx: Any) -> None:
    """The benchmark's operation: nothing at all."""


@operation
def step(ctx: Any, log: str, value: Any = None) -> dict[str, Any]:
    """Not resumable."""
    _record(ctx, log)
    ctx.logger.info("step %s ran", ctx.task_key)
    return {"done": ctx.task_key, "value": value}


@operation(resumable=True)
def block(ctx: Any, log: str, marker: str, hold: str) -> dict[str, str]:
    """Resumable: blocks while `hold` exists."""
    _record(ctx, log)
    _hold(marker, hold)
    return {"done": ctx.task_key}


@operation
def block_once(ctx: Any, log: str, marker: str, hold: str) -> dict[str, str]:
    """Not resumable: blocks while `hold` exists."""
    _record(ctx, log)
    _hold(marker, hold)
    return {"done": ctx.task_key}


@operation(process=True)
def sleepy(ctx: Any, log: str, pidfile: str, seconds: float) -> None:
    """Runs in a child process that a kill really stops."""
    _record(ctx, log)
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(seconds)


@operation
def lazy(ctx: Any, log: str, seconds: float) -> None:
    """A thread operation that outlives a short timeout."""
    _record(ctx, log)
    time.sleep(seconds)


@operation
def refuses(ctx: Any, log: str) -> None:
    _record(ctx, log)
    raise NonRecoverableError("no, never")


@operation
def wobbly(ctx: Any, log: str) -> None:
    _record(ctx, log)
    raise RecoverableError("try later", retry_after=0.1)


@operation
def again(ctx: Any, log: str) -> str:
    """Asks for one retry, then succeeds."""
    _record(ctx, log)
    if ctx.retries == 0:
        raise OperationRetry("once more", retry_after=0.1)
    return "second time"


@operation
def unjson(ctx: Any, log: str) -> object:
    _record(ctx, log)
    return {1, 2}


@operation
def boom(ctx: Any, log: str) -> None:
    _record(ctx, log)
    raise ValueError("plain error")


# workflows -----------------------------------------------------------------------


@workflow(resumable=True)
def one(ctx: Any, op: str, queue: str = "web", **kwargs: Any) -> Any:
    """One agent task `t` running `agent_flows:<op>` on `queue`."""
    g = ctx.graph("main")
    g.add(f"agent_flows:{op}", key="t", agent=queue, kwargs=kwargs)
    return g.execute()


@workflow(resumable=True)
def around(ctx: Any, log: str, marker: str, hold: str, resumable: bool = True) -> None:
    """a (manager) -> blk (agent "web") -> c (agent "web")."""
    g = ctx.graph("main")
    first = g.add(step, key="a", log=log)
    op = block if resumable else block_once
    middle = g.add(op, key="blk", agent="web", log=log, marker=marker, hold=hold)
    g.sequence(first, middle, g.add(step, key="c", agent="web", log=log))
    g.execute()


@workflow(resumable=True)
def many(ctx: Any, count: int, queue: str = "bench", where: str = "agent") -> None:
    """`count` independent no-op tasks, on agents of `queue` or in the manager."""
    g = ctx.graph("main")
    agent = queue if where == "agent" else None
    for index in range(count):
        g.add(noop, key=f"n{index}", agent=agent)
    g.execute()
