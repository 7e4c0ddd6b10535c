"""An agent task inside a subgraph, for tests/agents/test_agent_subgraphs.py.

`a` (manager) -> `install` (retries 2: `blk` on agent queue "web", blocking while the
file `hold` exists, -> `c` on "web") -> `d` (manager). Each run of a body appends a line to
`log` (`agent_flows`'s operations: key, agent, `ctx.resume`, `ctx.retries`).
"""

from __future__ import annotations

from typing import Any

from agent_flows import block, block_once, step

from dalsegno import workflow


@workflow(resumable=True)
def installed(ctx: Any, log: str, marker: str, hold: str, resumable: bool = True) -> None:
    g = ctx.graph("main")
    install = g.subgraph("install", retries=2, retry_interval=0.0)
    op = block if resumable else block_once
    install.sequence(
        install.add(op, key="blk", agent="web", log=log, marker=marker, hold=hold),
        install.add(step, key="c", agent="web", log=log),
    )
    g.sequence(g.add(step, key="a", log=log), install, g.add(step, key="d", log=log))
    g.execute()
