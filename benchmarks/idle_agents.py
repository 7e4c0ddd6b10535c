"""A fleet of idle agents for benchmarks/agents.py: N real `Agent`s in one process.

    python benchmarks/idle_agents.py --manager URL --token TOKEN --queue idle --count 200 --home DIR

Each one is the agent of `dalsegno agent` (its claim long-poll, heartbeats, outbox), on a
queue that never gets a task: what 200 agent processes cost the manager, without 200
Python interpreters on a 2-core machine. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from dalsegno.agent import Agent, AgentConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manager", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--queue", default="idle")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fleet = [
        Agent(
            AgentConfig(
                manager_url=args.manager,
                token=args.token,
                queue=args.queue,
                home=args.home / f"idle-{index}",
                name=f"idle-{index}",
                grace=0.0,
            )
        )
        for index in range(args.count)
    ]
    threads = [threading.Thread(target=agent.run, daemon=True) for agent in fleet]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for thread in threads:
        thread.start()
    stop.wait()
    for agent in fleet:
        agent.stop()
    for thread in threads:
        thread.join(5)


if __name__ == "__main__":
    main()
