"""Workflows for the lifecycle tests (tests/acceptance/test_lifecycle.py and
tests/integration/test_plan_equals_run.py).

Every operation appends one JSON line per run to the file `log` (crashy's `_record`): the
task key, `ctx.resume` and `ctx.retries`, which is how a test counts what really ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from crashy import _block, _record

from dalsegno import NonRecoverableError, RecoverableError, operation, workflow
from dalsegno.engine.outcomes import GraphFailed


@operation(resumable=True, retries=2)
def later(ctx: Any, log: str) -> dict[str, int]:
    """Its first attempt asks for a retry in 3 s; the next one succeeds."""
    _record(ctx, log)
    if ctx.retries == 0:
        msg = "not yet"
        raise RecoverableError(msg, retry_after=3)
    return {"retries": ctx.retries}


@operation
def once(ctx: Any, log: str) -> dict[str, str]:
    """Not resumable."""
    _record(ctx, log)
    return {"done": ctx.task_key}


@operation
def broken(ctx: Any, log: str) -> None:
    _record(ctx, log)
    msg = "broken for good"
    raise NonRecoverableError(msg)


@operation
def fails_while(ctx: Any, log: str, flag: str) -> dict[str, str]:
    """Fails while the file `flag` exists (a cause a person then fixes)."""
    _record(ctx, log)
    if os.path.exists(flag):
        msg = f"{flag} is there"
        raise NonRecoverableError(msg)
    return {"done": ctx.task_key}


@operation(resumable=True)
def hold_resumable(ctx: Any, log: str, marker: str, hold: str) -> dict[str, str]:
    return _block(ctx, log, marker, hold)


@workflow(resumable=True)
def retry_wait(ctx: Any, log: str) -> None:
    """a -> later -> c: `later` waits 3 s for its retry (a kill lands in the wait)."""
    g = ctx.graph("main")
    g.sequence(g.add(once, key="a", log=log), g.add(later, log=log), g.add(once, key="c", log=log))
    g.execute()


@workflow(resumable=True)
def undo_on_failure(ctx: Any, log: str, marker: str, hold: str) -> None:
    """`bad` fails; the workflow catches it and runs the undo graph, which blocks."""
    g = ctx.graph("main")
    g.add(broken, key="bad", log=log)
    try:
        g.execute()
    except GraphFailed:
        undo = ctx.graph("undo")
        undo.add(hold_resumable, key="clean", log=log, marker=marker, hold=hold)
        undo.execute()
        raise


@workflow(resumable=True)
def fixable(ctx: Any, log: str, flag: str) -> None:
    """a -> fix: `fix` fails while `flag` exists."""
    g = ctx.graph("main")
    g.sequence(g.add(once, key="a", log=log), g.add(fails_while, key="fix", log=log, flag=flag))
    g.execute()


@workflow(resumable=False)
def fixable_once(ctx: Any, log: str, flag: str) -> None:
    """`fixable`, but the workflow is not resumable."""
    g = ctx.graph("main")
    g.sequence(g.add(once, key="a", log=log), g.add(fails_while, key="fix", log=log, flag=flag))
    g.execute()


# the plan-equals-run property -----------------------------------------------------------


@operation(resumable=True)
def again(ctx: Any, log: str) -> dict[str, str]:
    _record(ctx, log)
    return {"done": ctx.task_key}


PLAN_OPERATIONS = {"resumable": again, "once": once}


@workflow(resumable=True)
def planned(ctx: Any, log: str, tasks: list[list[Any]]) -> None:
    """A graph from `tasks`: `[key, "resumable" | "once", [keys it depends on]]`."""
    g = ctx.graph("main")
    made = {key: g.add(PLAN_OPERATIONS[kind], key=key, log=log) for key, kind, _ in tasks}
    for key, _, deps in tasks:
        if deps:
            g.depend(made[key], on=[made[dep] for dep in deps])
    g.execute()


def runs_of(log: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The log's runs by task key, in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    path = Path(log)
    if path.exists():
        for line in path.read_text().splitlines():
            run = json.loads(line)
            found.setdefault(run["key"], []).append(run)
    return found
