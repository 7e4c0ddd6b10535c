"""Workflows the read commands and the paged lists are tested on (CLI, REST).

- `flaky`: `build` fails twice with a recoverable error, then succeeds (three attempts);
  `lint` fails for good with a traceback; `report` never runs (it needs `lint`); a second
  graph `docs` has a task keyed `build` too.
- `chatty`: `tasks` tasks each logging `lines` lines, a few at a time, so events keep
  arriving while a reader pages through them.
- `many`: `n` independent tasks.
- `patient`: `build` fails once and waits 30 s for its retry.
"""

from __future__ import annotations

import time
from typing import Any

from dalsegno import NonRecoverableError, RecoverableError, operation, workflow


@operation(resumable=True)
def compile_(ctx: Any, fail_times: int = 0) -> dict[str, int]:
    ctx.logger.info("compiling, attempt %d", ctx.retries + 1)
    if ctx.retries < fail_times:
        msg = f"compiler crashed on attempt {ctx.retries + 1}"
        raise RecoverableError(msg)
    return {"objects": 42}


@operation
def lint(ctx: Any) -> None:
    ctx.logger.warning("style problems found")
    problems = {"E501": 3}
    if problems:
        msg = f"lint failed: {problems}"
        raise NonRecoverableError(msg)


@operation(resumable=True)
def noop(ctx: Any) -> None:
    return None


@operation(resumable=True)
def talk(ctx: Any, lines: int, pause: float) -> int:
    for line in range(lines):
        ctx.logger.info("line %d of %s", line, ctx.task_key)
        if line % 25 == 24:
            time.sleep(pause)
    return lines


@workflow(resumable=True)
def flaky(ctx: Any) -> None:
    docs = ctx.graph("docs")
    docs.add(noop, key="build")
    docs.execute()
    g = ctx.graph("main")
    build = g.add(compile_, key="build", retries=2, retry_interval=0.1, fail_times=2)
    checked = g.add(lint, key="lint")
    report = g.add(noop, key="report")
    g.depend(report, on=[build, checked])
    g.execute()


@workflow(resumable=True)
def patient(ctx: Any) -> None:
    """`build` fails once, then waits 30 s for its retry."""
    g = ctx.graph("main")
    g.add(compile_, key="build", retries=1, retry_interval=30, fail_times=1)
    g.execute()


@workflow(resumable=True)
def chatty(ctx: Any, tasks: int = 20, lines: int = 500, pause: float = 0.01) -> None:
    g = ctx.graph("main")
    for index in range(tasks):
        g.add(talk, key=f"talker-{index:02d}", lines=lines, pause=pause)
    g.execute()


@workflow(resumable=True)
def many(ctx: Any, n: int = 100) -> None:
    g = ctx.graph("main")
    for index in range(n):
        g.add(noop, key=f"t{index:05d}")
    g.execute()
