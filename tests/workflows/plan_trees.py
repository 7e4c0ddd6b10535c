"""A nested graph for tests/integration/test_plan_equals_run.py: the plan-equals-run
property over subgraphs with retries and failure policies.

A spec is `{"nodes": [...], "edges": [[node, dependency], ...]}`; a node is a task
`{"key": k, "kind": "resumable" | "once", "ignore": bool}` or a subgraph `{"key": k,
"sub": SPEC, "retries": r, "ignore": bool}` (retried at once: no interval). Every run of a
task appends a JSON line to `log` (`lifecycle_flows`'s operations: key, `ctx.resume`,
`ctx.retries`), and every run succeeds: what fails is what a take-up fails.
"""

from __future__ import annotations

from typing import Any

from lifecycle_flows import PLAN_OPERATIONS

from dalsegno import workflow


def build(level: Any, spec: dict[str, Any], log: str) -> None:
    made: dict[str, Any] = {}
    for node in spec["nodes"]:
        policy = "ignore" if node.get("ignore") else "fail"
        if "sub" in node:
            sub = level.subgraph(node["key"], retries=node["retries"], retry_interval=0.0,
                                 on_failure=policy)  # fmt: skip
            build(sub, node["sub"], log)
            made[node["key"]] = sub
        else:
            options = {"on_failure": policy} if policy == "ignore" else None
            made[node["key"]] = level.add(
                PLAN_OPERATIONS[node["kind"]], key=node["key"], options=options, log=log
            )
    for node, dependency in spec["edges"]:
        level.depend(made[node], on=made[dependency])


@workflow(resumable=True)
def planned_tree(ctx: Any, log: str, spec: dict[str, Any]) -> None:
    g = ctx.graph("main")
    build(g, spec, log)
    g.execute()
