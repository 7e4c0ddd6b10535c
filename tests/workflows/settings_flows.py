"""Workflows for execution-wide retry settings and dry runs (tests of issue 15, items 5-6).

Every operation appends one JSON line per call to the file `log` (a param), so a test sees
whether an operation was ever called (a dry run calls none) and how often.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dalsegno import RecoverableError, operation, workflow


def _record(ctx: Any, log: str) -> int:
    """Log this call; how many calls of this task the log holds now."""
    with open(log, "a", encoding="utf-8") as runs:
        runs.write(json.dumps({"key": ctx.task_key, "retries": ctx.retries}) + "\n")
    with open(log, encoding="utf-8") as runs:
        return sum(1 for line in runs if json.loads(line)["key"] == ctx.task_key)


@operation
def plain(ctx: Any, log: str, fails: int = 0) -> dict[str, Any]:
    """Sets no retry settings; fails (recoverably) on its first `fails` calls."""
    calls = _record(ctx, log)
    if calls <= fails:
        msg = f"call {calls} fails"
        raise RecoverableError(msg)
    return {"calls": calls}


@operation(retries=4, retry_interval=0.4)
def decorated(ctx: Any, log: str) -> dict[str, Any]:
    """Its decorator sets its tasks' retries."""
    return {"calls": _record(ctx, log)}


@operation(resumable=True)
def gated(ctx: Any, log: str, gate: str) -> dict[str, Any]:
    """Fails (not retried) while the file `gate` exists."""
    calls = _record(ctx, log)
    if os.path.exists(gate):
        msg = "the gate is closed"
        raise RuntimeError(msg)
    return {"calls": calls}


@operation(resumable=True)
def block(ctx: Any, log: str, marker: str, hold: str) -> dict[str, Any]:
    """Touches `marker`, then waits while `hold` exists."""
    import time

    calls = _record(ctx, log)
    Path(marker).touch()
    deadline = time.monotonic() + 30
    while os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"calls": calls}


def _precedence_graph(ctx: Any, log: str) -> None:
    g = ctx.graph("main")
    g.add(plain, key="own", retries=5, retry_interval=0.5, log=log)
    g.add(decorated, key="op", log=log)
    g.add(plain, key="exec", log=log)
    g.add(plain, key="agent_task", agent="web", log=log)
    g.execute()


@workflow(resumable=True, task_retries=2, task_retry_interval=0.2)
def precedence(ctx: Any, log: str) -> None:
    """One task per level: its own settings, its operation's, none (the execution's or the
    workflow's); with `--dry-run` only, since one task goes to an agent queue."""
    _precedence_graph(ctx, log)


@workflow(resumable=True)
def undecorated(ctx: Any, log: str) -> None:
    """As `precedence`, with no workflow defaults: the built-in default applies last."""
    _precedence_graph(ctx, log)


@workflow(resumable=True)
def flaky(ctx: Any, log: str, fails: int = 2) -> None:
    """One task that fails `fails` times: it completes only with enough retries."""
    g = ctx.graph("main")
    g.add(plain, key="flaky", log=log, fails=fails)
    g.execute()


@workflow(resumable=True)
def staged(ctx: Any, log: str, gate: str, fails: int = 2) -> None:
    """Graph `main` (`gate`: fails while the gate file exists), then graph `later`, built
    only once `main` succeeded: by a resume, whose settings must be the start's."""
    g = ctx.graph("main")
    g.add(gated, key="gate", retries=0, log=log, gate=gate)
    g.execute()
    later = ctx.graph("later")
    later.add(plain, key="flaky", log=log, fails=fails)
    later.execute()


@workflow(resumable=True)
def dry_chain(ctx: Any, log: str, marker: str, hold: str) -> None:
    """a -> blk -> c -> remote (an agent task), for a dry run killed and resumed."""
    g = ctx.graph("main")
    g.sequence(
        g.add(plain, key="a", log=log),
        g.add(block, key="blk", log=log, marker=marker, hold=hold),
        g.add(plain, key="c", log=log, fails=5),
        g.add(plain, key="remote", agent="web", log=log),
    )
    g.execute()
