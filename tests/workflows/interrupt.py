"""A chain of naps, for Ctrl-C tests: each nap writes a marker when it begins."""

from __future__ import annotations

import time
from pathlib import Path

from dalsegno import operation, workflow


@operation(resumable=True)
def nap(ctx, seconds: float, marker: str) -> None:
    Path(marker).write_text(ctx.task_key)
    time.sleep(seconds)


@workflow(resumable=True)
def naps(ctx, n: int, seconds: float, marker: str) -> None:
    g = ctx.graph("main")
    g.sequence(*[g.add(nap, key=f"n{i}", seconds=seconds, marker=marker) for i in range(n)])
    g.execute()
