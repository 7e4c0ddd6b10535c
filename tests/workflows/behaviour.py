"""Workflows and operations for the engine's behaviour tests (integration and acceptance).

The tests refer to them by file (`.../tests/workflows/behaviour.py:NAME`) in process, and
as `behaviour.py:NAME` from the CLI (whose current directory is tests/workflows).

What a workflow wants a test to see it logs as `REPORT <name> <json>`: an event of the
execution (no graph, no task), read back from the store.

Operations a test must hold still wait on files in a directory the test passes: `gate`
creates `<dir>/<name>.running` when it begins and returns once `<dir>/<name>.go` exists.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dalsegno import (
    GraphFailed,
    NonRecoverableError,
    OperationRetry,
    RecoverableError,
    operation,
    workflow,
)

HERE = Path(__file__).resolve()


def report(ctx: Any, name: str, value: Any) -> None:
    ctx.logger.info("REPORT %s %s", name, json.dumps(value, sort_keys=True))


def _refusal(exc: Exception) -> list[str]:
    return [type(exc).__name__, str(exc)]


# operations ------------------------------------------------------------------------


@operation
def echo(ctx: Any, value: Any = None) -> dict[str, Any]:
    return {"value": value, "key": ctx.task_key}


@operation
def needs(ctx: Any, alpha: Any, beta: Any = 1) -> dict[str, Any]:
    return {"alpha": alpha, "beta": beta}


@operation
def with_options(ctx: Any, key: Any, timeout: Any = None, label: str = "x") -> dict[str, Any]:
    """Its parameters are named like task options: only `kwargs={...}` can reach them."""
    return {"key": key, "timeout": timeout, "label": label, "task_key": ctx.task_key}


@operation
def probe(
    ctx: Any,
    fail_times: int = 0,
    fail_with: str = "runtime",
    retry_after: float | None = None,
) -> dict[str, Any]:
    """Logs what it sees in `ctx`; fails its first `fail_times` attempts as `fail_with` says."""
    seen = {
        "execution_id": ctx.execution_id,
        "task_key": ctx.task_key,
        "retries": ctx.retries,
        "resume": ctx.resume,
        "idempotency_key": ctx.idempotency_key,
    }
    ctx.logger.info("PROBE %s", json.dumps(seen, sort_keys=True))
    if ctx.retries < fail_times:
        message = f"boom {ctx.retries}"
        if fail_with == "recoverable":
            raise RecoverableError(message, retry_after=retry_after)
        if fail_with == "retry":
            raise OperationRetry(message, retry_after=retry_after)
        if fail_with == "nonrecoverable":
            raise NonRecoverableError(message)
        raise RuntimeError(message)
    return seen


@operation(retries=2, retry_interval=0.05)
def probe_with_defaults(ctx: Any, fail_times: int = 0) -> dict[str, Any]:
    """Retry policy declared on the operation: 2 retries, 0.05 s apart."""
    if ctx.retries < fail_times:
        msg = f"boom {ctx.retries}"
        raise RuntimeError(msg)
    return {"retries": ctx.retries}


@operation
def chatty(ctx: Any, lines: int) -> int:
    for number in range(1, lines + 1):
        ctx.logger.info("line %d of %s", number, ctx.task_key)
    ctx.logger.warning("warned by %s", ctx.task_key)
    return lines


@operation
def not_json(ctx: Any) -> Any:
    return {"tags": {1, 2}}


@operation
def fail(ctx: Any, message: str, recoverable: bool = False) -> None:
    if recoverable:
        raise RuntimeError(message)
    raise NonRecoverableError(message)


@operation
def slow(ctx: Any, seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


@operation
def sleepy(ctx: Any, first_sleep: float) -> dict[str, Any]:
    """Sleeps on its first attempt only (for task timeouts)."""
    if ctx.retries == 0:
        time.sleep(first_sleep)
    return {"retries": ctx.retries}


@operation
def gate(ctx: Any, dir: str, name: str, limit: float = 20.0) -> dict[str, Any]:
    """Marks `<name>.running`, then waits for `<name>.go` (at most `limit` seconds)."""
    folder = Path(dir)
    with (folder / f"{name}.runs").open("a") as runs:
        runs.write(f"{ctx.retries}\n")
    (folder / f"{name}.running").touch()
    deadline = time.monotonic() + limit
    while not (folder / f"{name}.go").exists():
        if time.monotonic() > deadline:
            msg = f"gate {name} never opened"
            raise NonRecoverableError(msg)
        time.sleep(0.01)
    return {"name": name}


@operation
def cancel_own_execution(ctx: Any, store_url: str, linger: float = 0.0) -> str:
    """Asks a cancel of the execution it belongs to, as another process would, then returns
    after `linger` seconds."""
    from dalsegno.service.executions import ExecutionService
    from dalsegno.store import open_store

    store = open_store(store_url)
    try:
        ExecutionService(store).cancel(ctx.execution_id, "cancel")
    finally:
        store.close()
    time.sleep(linger)
    return "asked"


# workflows -------------------------------------------------------------------------


@workflow(resumable=True)
def keys(ctx: Any) -> None:
    """Automatic keys: `name`, `name#2`...; an explicit key does not count; a string
    reference counts with the function it names."""
    g = ctx.graph("main")
    tasks = [
        g.add(echo, value=1),
        g.add(echo, value=2),
        g.add(echo, key="custom", value=3),
        g.add(f"{HERE}:echo", value=4),
        g.add(needs, alpha=5),
    ]
    report(ctx, "keys", [task.key for task in tasks])
    report(ctx, "results", g.execute())


@workflow
def arguments(ctx: Any) -> None:
    """Every way of passing operation arguments, and the ones `g.add` refuses."""
    g = ctx.graph("main")
    refused: dict[str, list[str]] = {}
    attempts: dict[str, Any] = {
        "ambiguous_key": lambda: g.add(with_options, key="x"),
        "ambiguous_timeout": lambda: g.add(with_options, timeout=5, kwargs={"key": "v"}),
        "missing": lambda: g.add(needs),
        "missing_in_kwargs": lambda: g.add(needs, kwargs={"beta": 2}),
        "unknown": lambda: g.add(needs, alpha=1, gamma=2),
        "unknown_in_kwargs": lambda: g.add(needs, kwargs={"alpha": 1, "delta": 2}),
        "given_twice": lambda: g.add(needs, alpha=1, kwargs={"alpha": 2}),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except Exception as exc:
            refused[name] = _refusal(exc)
        else:
            refused[name] = ["accepted"]
    report(ctx, "refused", refused)
    bare = g.add(needs, alpha=1, beta=2)
    dict_form = g.add(needs, kwargs={"alpha": 3})
    both = g.add(needs, kwargs={"alpha": 4}, beta=5)
    options = g.add(with_options, kwargs={"key": "op-key", "timeout": 7, "label": "y"})
    report(ctx, "keys", [t.key for t in (bare, dict_form, both, options)])
    report(ctx, "results", g.execute())


@workflow
def cycle(ctx: Any) -> None:
    g = ctx.graph("main")
    first = g.add(echo, key="first", value=1)
    second = g.add(echo, key="second", value=2)
    third = g.add(echo, key="third", value=3)
    g.add(echo, key="free", value=4)
    g.depend(second, on=first)
    g.depend(third, on=second)
    g.depend(first, on=third)
    g.execute()


@workflow
def bad_result(ctx: Any) -> None:
    g = ctx.graph("main")
    g.add(not_json, key="weird")
    g.add(echo, key="fine", value="ok")
    g.execute()


@workflow(resumable=True)
def params(ctx: Any, name: Any, count: Any = 1, extra: Any = None) -> None:
    """Unannotated in effect (Any): the tests of how `-p` reads its values use it."""
    report(ctx, "params", ctx.params)
    report(ctx, "arguments", {"name": name, "count": count, "extra": extra})
    report(ctx, "resume", ctx.resume)
    report(ctx, "execution_id", ctx.execution_id)


@workflow(resumable=True)
def probes(
    ctx: Any,
    count: int = 1,
    fail_times: int = 0,
    retries: int | None = None,
    interval: float | None = None,
    fail_with: str = "runtime",
    retry_after: float | None = None,
) -> None:
    """`count` independent probe tasks `p0`, `p1`...; `retries`/`interval` None = not given."""
    g = ctx.graph("main")
    for number in range(count):
        g.add(
            probe,
            key=f"p{number}",
            retries=retries,
            retry_interval=interval,
            fail_times=fail_times,
            fail_with=fail_with,
            retry_after=retry_after,
        )
    report(ctx, "results", g.execute())


@workflow
def op_defaults(ctx: Any, fail_times: int, retries: int | None = None) -> None:
    g = ctx.graph("main")
    g.add(probe_with_defaults, key="d", retries=retries, fail_times=fail_times)
    g.execute()


@workflow
def timeouts(ctx: Any, first_sleep: float, timeout: float, retries: int = 0) -> None:
    g = ctx.graph("main")
    g.add(
        sleepy,
        key="sleepy",
        timeout=timeout,
        retries=retries,
        retry_interval=0,
        first_sleep=first_sleep,
    )
    g.execute()


@workflow
def log_lines(ctx: Any) -> None:
    ctx.logger.info("workflow says hello")
    g = ctx.graph("main")
    talker = g.add(chatty, key="talker", lines=3)
    other = g.add(chatty, key="other", lines=2)
    g.depend(other, on=talker)
    g.execute()


@workflow(resumable=True)
def blocking(ctx: Any) -> None:
    """Two failures, their dependents, and independent work that runs to its end."""
    g = ctx.graph("main")
    bad = g.add(fail, key="bad", message="disk full")
    child = g.add(echo, key="child", value=1)
    grandchild = g.add(echo, key="grandchild", value=2)
    g.sequence(bad, child, grandchild)
    also_bad = g.add(fail, key="also_bad", message="quota exceeded", recoverable=True)
    slow_ok = g.add(slow, key="slow_ok", seconds=0.4, value="done")
    after_slow = g.add(echo, key="after_slow", value=3)
    g.depend(after_slow, on=slow_ok)
    mixed = g.add(echo, key="mixed", value=4)
    g.depend(mixed, on=[slow_ok, also_bad])
    g.execute()


@workflow(resumable=True)
def catches(ctx: Any) -> None:
    """A workflow may catch `GraphFailed` and go on."""
    g = ctx.graph("main")
    g.add(fail, key="bad", message="nope")
    try:
        g.execute()
    except GraphFailed as exc:
        report(ctx, "caught", str(exc))
    cleanup = ctx.graph("cleanup")
    cleanup.add(echo, key="tidy", value="tidied")
    report(ctx, "cleanup", cleanup.execute())


@workflow(resumable=True)
def gated_chain(ctx: Any, dir: str, limit: float = 20.0) -> None:
    """`a` waits on its gate, then `b`, then `c`."""
    g = ctx.graph("main")
    a = g.add(gate, key="a", dir=dir, name="a", limit=limit)
    b = g.add(echo, key="b", value="b")
    c = g.add(echo, key="c", value="c")
    g.sequence(a, b, c)
    g.execute()


@workflow(resumable=True)
def self_cancel(ctx: Any, store_url: str, linger: float = 0.0) -> None:
    """`first` asks a cancel of this execution as it ends; `second` depends on it."""
    g = ctx.graph("main")
    first = g.add(cancel_own_execution, key="first", store_url=store_url, linger=linger)
    second = g.add(echo, key="second", value=2)
    g.depend(second, on=first)
    g.execute()


@workflow(resumable=True)
def deploy(ctx: Any, hosts: int = 2, fail_app: bool = False) -> None:
    """The docs/interface.md example, manager-side: vms, then the app."""
    g = ctx.graph("main")
    vms = [g.add(echo, key=f"vm{i}", value=f"10.0.0.{i}") for i in range(hosts)]
    if fail_app:
        app = g.add(fail, key="app", message="app install failed")
    else:
        app = g.add(echo, key="app", value="installed")
    g.depend(app, on=vms)
    g.execute()


def not_a_workflow(ctx: Any) -> None:
    """A plain function: a reference to it is refused."""
