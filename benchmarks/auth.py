"""What the security layer costs a request: agents' heartbeats per CPU-second through the
manager's whole ASGI app (authentication, role and queue checks, security headers, the
handler, the store), with an agent's token (looked up by its hash in the store) and with
the admin token (compared in memory), beside the same app of an earlier tree.

    .venv/bin/python benchmarks/auth.py [--requests 1000] [--repeat 3] [--before DIR]

`--before DIR` is the `src` directory of an earlier tree (`git archive REV src | tar -x -C
/tmp/before`, then `--before /tmp/before/src`). Each tree runs in a process of its own on a
fresh SQLite store; runs alternate between the trees. The app is called in process over
httpx's ASGI transport, and the rate is per CPU-second of that process (`process_time`), so
other load on a shared machine moves the figures less than wall-clock rates would. Medians
of five batches a run are printed, with `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BEAT = {"queue": "web", "agent": "bench", "host": "h", "pid": 1, "concurrency": 1}


async def _rate(app: Any, token: str, requests: int) -> float:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://manager/api/v1", headers=headers
    ) as client:
        first = await client.post("/agents/heartbeat", json=BEAT)
        assert first.status_code == 200, first.text
        began = time.process_time()
        for _ in range(requests):
            await client.post("/agents/heartbeat", json=BEAT)
        return requests / (time.process_time() - began)


def child(requests: int) -> None:
    """One tree's run: its app on a fresh store; prints the medians as JSON."""
    from dalsegno.api.app import create_app
    from dalsegno.service import open_service

    service = open_service(f"sqlite:///{Path(tempfile.mkdtemp()) / 'dalsegno.db'}")
    admin = "admin-token-of-the-benchmark-43-characters"
    app = create_app(service, admin)
    try:
        from dalsegno.service.access import AccessService

        agent = AccessService.on(service.store).issue_agent_token("web", "benchmark").secret
    except ImportError:  # a tree before people's tokens: agent tokens had their own table
        from dalsegno.service.agents import AgentService

        agent = AgentService(service).create_token("web")  # type: ignore[call-arg]
    found = {}
    for kind, token in (("admin token", admin), ("agent token", agent)):
        rates = [asyncio.run(_rate(app, token, requests)) for _ in range(5)]
        found[kind] = statistics.median(rates)
    service.store.close()
    print(json.dumps(found))


def _uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", help="the src directory of an earlier tree")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests)
        return
    print("uptime:", _uptime())
    trees = {"this tree": None, **({"before": args.before} if args.before else {})}
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for tree, src in trees.items():
            env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--requests", str(args.requests)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            for kind, rate in json.loads(done.stdout.splitlines()[-1]).items():
                runs.setdefault((tree, kind), []).append(rate)
    for (tree, kind), rates in sorted(runs.items()):
        shown = ", ".join(f"{rate:.0f}" for rate in rates)
        median = statistics.median(rates)
        print(f"{tree:>10}, {kind}: median {median:.0f} heartbeats per CPU-second ({shown})")
    print("uptime:", _uptime())


if __name__ == "__main__":
    main()
