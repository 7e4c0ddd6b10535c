"""The agent queue on the manager's side, on SQLite and PostgreSQL, without HTTP.

    .venv/bin/python benchmarks/agent_queue.py [--tasks 1000] [--agents 4] [--repeat 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

An execution of `--tasks` independent agent tasks runs in this process (the owner's
engine, as in a manager); `--agents` threads play agents through `AgentService` (what the
REST routes call): each one exchange after the other, delivering the results of its last
batch and claiming (and starting) the next 8 tasks. Figures:

- wake-up: a claim waiting on an empty queue, then one task is sent: milliseconds from the
  commit that sent it to the claim's answer (median of 20). The fallback re-check is 2 s,
  so a figure far below it is the notification at work.
- throughput: tasks/s from the execution's start to its end, every task claimed and
  started durably, its result recorded durably and applied by the owner (one exchange
  commit per batch of 8 on top of the owner's group commits).

Each run gets a fresh store (a new SQLite file or a new PostgreSQL database).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres import fresh_store

from dalsegno.engine.runner import EngineConfig
from dalsegno.service.agents import AgentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store import open_store
from dalsegno.store.agent_records import AgentReport, Delivery, Exchange

WORKLOADS = Path(__file__).resolve().parent / "agent_workloads.py"
DONE = AgentReport("succeeded", "null", None, True, None)


def run_execution(service: ExecutionService, count: int) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcome.append(
            service.start(f"{WORKLOADS}:wide", {"count": count, "queue": "bench"})
        ),
        daemon=True,
    )
    thread.start()
    return thread, outcome


def wake_up(url: str, samples: int) -> float:
    store = open_store(url)
    try:
        service = ExecutionService(store, EngineConfig(concurrency=8, poll_interval=0.05))
        agents = AgentService(service)
        found: list[float] = []
        for _ in range(samples):
            answered: list[float] = []

            def wait_for_task(answered: list[float] = answered) -> None:
                agents.claim("bench", "w", 1, 10)
                answered.append(time.time())

            poller = threading.Thread(target=wait_for_task)
            poller.start()
            time.sleep(0.3)  # the claim is waiting
            thread, _ = run_execution(service, 1)
            poller.join(15)
            execution = service.list_executions()[0]
            sent = next(
                e.created_at for e in store.list_events(execution.id) if e.type == "task_sent"
            )
            found.append((answered[0] - sent) * 1000)
            service.cancel(execution.id, "force")
            thread.join(10)
        return statistics.median(found)
    finally:
        store.close()


def throughput(url: str, count: int, agents_count: int) -> float:
    store = open_store(url)
    try:
        service = ExecutionService(store, EngineConfig(concurrency=32))
        began = time.monotonic()
        thread, outcome = run_execution(service, count)
        done = threading.Event()

        def agent(index: int) -> None:
            agents = AgentService(service)
            name = f"agent-{index}"
            held: list[str] = []
            calls = itertools.count()
            while not done.is_set():
                # one exchange: the results of the last batch, and a new batch started
                call = Exchange(
                    "bench", name, [Delivery(a, DONE) for a in held], 8, f"c{index}x{next(calls)}"
                )
                held = [found["attempt_id"] for found in agents.exchange(call)[1]]
                if not held:
                    time.sleep(0.01)

        workers = [
            threading.Thread(target=agent, args=(i,), daemon=True) for i in range(agents_count)
        ]
        for worker in workers:
            worker.start()
        thread.join(600)
        took = time.monotonic() - began
        done.set()
        for worker in workers:
            worker.join(10)  # each one's claim waits 1 s at most
        assert outcome and outcome[0].outcome.status.value == "completed", outcome
        return count / took
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(f"{args.tasks} independent agent tasks, {args.agents} agent threads, "
          f"{args.repeat} runs each (medians)")  # fmt: skip
    print("| store | wake-up of a waiting claim (ms) | tasks/s (exchange, applied) |")
    print("|---|---|---|")
    for backend in ("sqlite", "postgres"):
        wakes, rates = [], []
        for _ in range(args.repeat):
            with fresh_store(backend, args.postgres) as (_, url):
                wakes.append(wake_up(url, 20))
            with fresh_store(backend, args.postgres) as (_, url):
                rates.append(throughput(url, args.tasks, args.agents))
        each_wake = ", ".join(f"{w:.1f}" for w in wakes)
        each_rate = ", ".join(f"{r:.0f}" for r in rates)
        print(
            f"| {backend} | **{statistics.median(wakes):.1f}** ({each_wake})"
            f" | **{statistics.median(rates):.0f}** ({each_rate}) |"
        )


if __name__ == "__main__":
    main()
