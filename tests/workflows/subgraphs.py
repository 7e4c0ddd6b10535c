"""Workflows over subgraphs for the engine's tests: a graph built from a JSON spec.

A spec is `{"nodes": [...], "edges": [[node, dependency], ...]}`; a node is a task
`{"key": k, "fail": n, "sleep": s, "ignore": true, "retries": r, "hold": path, "once":
true}` (its first `n` runs fail; `hold`: it waits while that file exists; `once`: not
resumable) or a subgraph `{"key": k, "sub": SPEC, "retries": r, "interval": s, "ignore": true}`.
Every run of a task appends `<key> ok|fail` to the `log` file, so a test (and a run after
a crash) counts the runs of each task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dalsegno import operation, workflow


def runs(log: str, key: str) -> list[str]:
    path = Path(log)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] == key]


def _run(ctx: Any, log: str, fail: int, sleep: float, hold: str) -> str:
    done = len(runs(log, ctx.task_key))
    if sleep:
        time.sleep(sleep)
    if hold:  # marks `<hold>.running`, then waits while the file `hold` exists
        Path(f"{hold}.running").touch()
        while Path(hold).exists():
            time.sleep(0.02)
    failing = done < fail
    with Path(log).open("a") as out:
        out.write(f"{ctx.task_key} {'fail' if failing else 'ok'}\n")
    if failing:
        msg = f"{ctx.task_key} failed run {done + 1}"
        raise RuntimeError(msg)
    return ctx.task_key


@operation(resumable=True)
def step(ctx: Any, log: str, fail: int = 0, sleep: float = 0.0, hold: str = "") -> str:
    return _run(ctx, log, fail, sleep, hold)


@operation(resumable=True)
def by_attempt(ctx: Any, log: str, fail: int = 0, sleep: float = 0.0, hold: str = "") -> str:
    """Fails while its task's retry count is below `fail`: the same outcome however often
    an interrupted attempt runs again (for crash equivalence)."""
    with Path(log).open("a") as out:
        out.write(f"{ctx.task_key} {'fail' if ctx.retries < fail else 'ok'}\n")
    if ctx.retries < fail:
        msg = f"{ctx.task_key} failed attempt {ctx.retries + 1}"
        raise RuntimeError(msg)
    return ctx.task_key


@operation
def step_once(ctx: Any, log: str, fail: int = 0, sleep: float = 0.0, hold: str = "") -> str:
    """`step`, not resumable."""
    return _run(ctx, log, fail, sleep, hold)


OPERATIONS = {"step": step, "once": step_once, "by_attempt": by_attempt}


def build(level: Any, spec: dict[str, Any], log: str) -> dict[str, Any]:
    handles: dict[str, Any] = {}
    for node in spec.get("nodes", []):
        if "sub" in node:
            sub = level.subgraph(
                node["key"],
                retries=node.get("retries", 0),
                retry_interval=node.get("interval", 0.0),
                on_failure="ignore" if node.get("ignore") else "fail",
            )
            build(sub, node["sub"], log)
            handles[node["key"]] = sub
        else:
            options = {"on_failure": "ignore"} if node.get("ignore") else None
            handles[node["key"]] = level.add(
                OPERATIONS[node.get("op", "once" if node.get("once") else "step")],
                key=node["key"],
                retries=node.get("retries", 0),
                retry_interval=node.get("interval", 0.0),
                options=options,
                log=log,
                fail=node.get("fail", 0),
                sleep=node.get("sleep", 0.0),
                hold=node.get("hold", ""),
            )
    for node, dependency in spec.get("edges", []):
        level.depend(handles[node], on=handles[dependency])
    return handles


@workflow(resumable=True)
def tree(ctx: Any, log: str, spec: dict[str, Any]) -> None:
    g = ctx.graph("main")
    build(g, spec, log)
    g.execute()


@workflow(resumable=True)
def drifting(ctx: Any, log: str, change: str) -> None:
    """On a resume it builds what `change` says differs from the stored graph."""
    g = ctx.graph("main")
    sub = g.subgraph("s" if not (ctx.resume and change == "subgraph") else "other")
    first = sub.add(step, key="a", log=log)
    second = g.add(step, key="b", log=log, fail=1)
    if ctx.resume and change == "task":
        sub.add(step, key="extra", log=log)
    if ctx.resume and change == "level":
        g.depend(second, on=first)  # `a` is inside `s`: not a node of the graph
    elif not (ctx.resume and change == "edge"):
        g.depend(second, on=sub)
    else:
        g.depend(sub, on=second)
    g.execute()


@workflow
def bad(ctx: Any, log: str, build: str) -> None:
    g = ctx.graph("main")
    s = g.subgraph("s")
    a = s.add(step, key="a", log=log)
    if build == "dup":
        s.add(step, key="s", log=log)
    elif build == "empty":
        g.subgraph("e")
    elif build == "cycle":
        b = g.add(step, key="b", log=log)
        g.depend(b, on=s)
        g.depend(s, on=b)
    elif build == "policy":
        g.subgraph("p", on_failure="retry")
    elif build == "option":
        s.add(step, key="c", log=log, options={"colour": "red"})
    del a
    g.execute()
