"""Agent benchmark: no-op agent operations per second with 1 and 4 agents, beside the same
no-op operations run manager-side, against one real `dalsegno manager` process.

    .venv/bin/python benchmarks/agents.py [--tasks 500] [--repeat 3]

Each figure is one execution of `--tasks` independent no-op tasks, from `POST
/api/v1/executions` until `GET` shows it `completed`; tasks per second = tasks / seconds.
An agent task costs a long-poll claim, `started` (durable before the operation runs), the
result (committed to the agent's outbox, then to the store) and the manager applying it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manager import start_manager

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "agent_workloads.py"


def start_agents(
    home: Path, url: str, count: int, concurrency: int
) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    token = (home / "token").read_text().strip()
    return [
        subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "--manager", url, "--token", token, "agent",
             "--queue", "bench", "--name", f"bench-{index}", "--concurrency", str(concurrency),
             "--home", str(home / f"agent-{index}")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(home / f"agent-{index}.log").open("a"),
        )
        for index in range(count)
    ]  # fmt: skip


def run_once(client: httpx.Client, url: str, tasks: int, queue: str | None) -> float:
    began = time.perf_counter()
    created = client.post(
        f"{url}/executions",
        json={"workflow": f"{WORKLOADS}:wide", "params": {"count": tasks, "queue": queue}},
    )
    created.raise_for_status()
    execution_id = created.json()["id"]
    while True:
        status = client.get(f"{url}/executions/{execution_id}").json()["status"]
        if status == "completed":
            return time.perf_counter() - began
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"the benchmark execution ended {status}")
        time.sleep(0.01)


def measure(tasks: int, repeat: int, agents: int, concurrency: int) -> list[float]:
    """Tasks per second, `repeat` times: manager-side when `agents` is 0."""
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-agents-"))
    manager, url = start_manager(home)
    workers = start_agents(home, url, agents, concurrency) if agents else []
    try:
        headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
        with httpx.Client(headers=headers, timeout=60) as client:
            queue = "bench" if agents else None
            run_once(client, url, 20, queue)  # warm-up: imports, connections
            return [tasks / run_once(client, url, tasks, queue) for _ in range(repeat)]
    finally:
        for process in [*workers, manager]:
            process.send_signal(signal.SIGTERM)
        for process in [*workers, manager]:
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [
        ("manager-side (no agent), concurrency 32", 0, 1),
        ("1 agent, --concurrency 1", 1, 1),
        ("4 agents, --concurrency 1 each", 4, 1),
        ("1 agent, --concurrency 8", 1, 8),
        ("4 agents, --concurrency 8 each", 4, 8),
    ]
    print(f"{args.tasks} independent no-op tasks per execution, {args.repeat} runs each")
    print("| where the operations run | tasks/s (median) | runs |")
    print("|---|---|---|")
    for label, agents, concurrency in rows:
        found = measure(args.tasks, args.repeat, agents, concurrency)
        runs = ", ".join(f"{value:.0f}" for value in found)
        print(f"| {label} | **{statistics.median(found):.0f}** | {runs} |", flush=True)


if __name__ == "__main__":
    main()
