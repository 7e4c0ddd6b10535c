"""Agent benchmark: no-op agent tasks per second against a real `dalsegno manager`, beside
the same graph run manager-side in the same run, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/agents.py [--tasks 2000] [--repeat 3] [--idle 200]
        [--backends sqlite,postgres] [--setups 4x8,1x1 ("": manager-side only)]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--queue-token]

For each backend: a fresh store (a new SQLite file, or a new database on the PostgreSQL
server) and one manager process. Each figure is one execution of `--tasks` independent
no-op tasks, from `POST /api/v1/executions` to `completed`: tasks / (`ended_at` -
`created_at` of the execution, as the store has them). Rows:

- manager-side: the same workflow with `agent=None` (concurrency 32, the default);
- for each setup AxS: A real `dalsegno agent` processes with `--concurrency S` (with the
  admin token, or with `--queue-token` a token of their queue, as in production), alone,
  then with `--idle` more agents waiting on another queue (real `Agent`s of
  benchmarks/idle_agents.py, in one process: long-polls and heartbeats as N processes
  would send them). Runs alternate between the two, so drift of a shared machine falls on
  both alike.

Medians are printed; every run and the manager's CPU seconds per run go to
benchmarks/results/agents-STAMP.json, with `uptime` before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres import fresh_store, start_manager

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "agent_workloads.py"
IDLE = ROOT / "benchmarks" / "idle_agents.py"
TICKS = os.sysconf("SC_CLK_TCK")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    return env


def start_agents(
    home: Path, api: str, count: int, concurrency: int, tag: str, token: str | None = None
) -> list[subprocess.Popen[bytes]]:
    """`count` agents of queue `bench`, with `token` (default: the admin token)."""
    token = token or (home / "token").read_text().strip()
    return [
        subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "--manager", api, "--token", token, "agent",
             "--queue", "bench", "--name", f"{tag}-{index}", "--concurrency", str(concurrency),
             "--home", str(home / f"{tag}-{index}")],
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=(home / f"{tag}-{index}.log").open("a"),
        )
        for index in range(count)
    ]  # fmt: skip


def start_idle(home: Path, api: str, count: int) -> subprocess.Popen[bytes]:
    token = (home / "token").read_text().strip()
    fleet = subprocess.Popen(
        [sys.executable, str(IDLE), "--manager", api, f"--token={token}", "--queue", "idle",
         "--count", str(count), "--home", str(home / "idle")],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=(home / "idle.log").open("a"),
    )  # fmt: skip
    return fleet


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_for_agents(
    client: httpx.Client, api: str, queue: str, count: int, since: float = 0.0
) -> None:
    """Until `count` agents of `queue` have sent a heartbeat since `since` (they are
    claiming; agents of an earlier fleet of the same names are still listed)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = client.get(f"{api}/agents").json()
        fresh = [a for a in found if a["queue"] == queue and a["last_heartbeat_at"] >= since]
        if len(fresh) >= count:
            time.sleep(3.0)  # their first long-polls are in place, their start is over
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} agents of {queue} did not show up")


def wait_for_quiet(client: httpx.Client, api: str, count: int) -> None:
    """Until a fleet of `count` agents that just started is past its start: in one second,
    its heartbeats and exchanges are fewer than a twentieth of it (what it costs when it
    waits is what is measured, not its start)."""
    deadline = time.monotonic() + 60
    before = store_calls(client, api)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = store_calls(client, api)
        calls = sum(
            now.get(name, 0.0) - before.get(name, 0.0)
            for name in ("agent_heartbeat", "exchange_agent_tasks")
        )
        if calls < max(5, count / 20):
            return
        before = now
    raise RuntimeError(f"{count} idle agents did not settle within a minute")


def store_calls(client: httpx.Client, api: str) -> dict[str, float]:
    """The manager's store calls so far, by operation (its `/metrics`)."""
    site = api.removesuffix("/api/v1")
    found: dict[str, float] = {}
    for line in client.get(f"{site}/metrics").text.splitlines():
        if line.startswith("dalsegno_store_seconds_count{"):
            name = line.split('operation="', 1)[1].split('"', 1)[0]
            found[name] = float(line.rsplit(" ", 1)[1])
    return found


def run_once(
    client: httpx.Client, api: str, tasks: int, queue: str | None, manager: int
) -> dict[str, Any]:
    """One execution of `tasks` no-op tasks; its rate from the store's own times."""
    calls = store_calls(client, api)
    cpu = cpu_seconds(manager)
    created = client.post(
        f"{api}/executions",
        json={"workflow": f"{WORKLOADS}:wide", "params": {"count": tasks, "queue": queue}},
    )
    created.raise_for_status()
    execution_id = created.json()["id"]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        # the list (no tasks) is light: looking costs the manager little
        found = {e["id"]: e for e in client.get(f"{api}/executions").json()}
        status = found[execution_id]["status"]
        if status == "completed":
            break
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"the benchmark execution ended {status}: {found[execution_id]}")
        time.sleep(0.25)  # the figure is the store's own times: looking often buys nothing
    else:
        raise RuntimeError("the benchmark execution did not complete")
    execution = found[execution_id]
    seconds = (
        datetime.fromisoformat(execution["ended_at"])
        - datetime.fromisoformat(execution["created_at"])
    ).total_seconds()
    cpu = cpu_seconds(manager) - cpu
    after = store_calls(client, api)
    return {
        "tasks_per_s": tasks / seconds,
        "seconds": seconds,
        "manager_cpu_s": cpu,
        # store calls per task, by operation (the benchmark's own looks included)
        "store_calls_per_task": {
            name: round((count - calls.get(name, 0.0)) / tasks, 3)
            for name, count in sorted(after.items())
            if count > calls.get(name, 0.0)
        },
    }


def measure_backend(args: argparse.Namespace, backend: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with fresh_store(backend, args.postgres) as (home, url):
        manager, api = start_manager(home, url, 64, WORKLOADS)
        headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
        try:
            with httpx.Client(headers=headers, timeout=60) as client:
                run_once(client, api, 50, None, manager.pid)  # warm-up: imports, connections
                runs = [
                    run_once(client, api, args.tasks, None, manager.pid) for _ in range(args.repeat)
                ]
                rows.append(_row(backend, "manager-side, concurrency 32", runs))
                for setup in filter(None, args.setups.split(",")):  # "": manager-side only
                    count, _, slots = setup.partition("x")
                    rows += measure_setup(
                        args, backend, client, home, api, manager, (int(count), int(slots))
                    )
                    print(f"  ({backend} {setup} done)", file=sys.stderr, flush=True)
        finally:
            stop([manager])
    return rows


def measure_setup(
    args: argparse.Namespace,
    backend: str,
    client: httpx.Client,
    home: Path,
    api: str,
    manager: subprocess.Popen[bytes],
    setup: tuple[int, int],
) -> list[dict[str, Any]]:
    count, slots = setup
    tag = f"a{count}x{slots}"
    token = None
    if args.queue_token:  # as agents run in production: a token scoped to their queue
        made = client.post(f"{api}/agents/tokens", json={"queue": "bench"})
        made.raise_for_status()
        token = made.json()["token"]
    agents = start_agents(home, api, count, slots, tag, token)
    alone: list[dict[str, Any]] = []
    crowded: list[dict[str, Any]] = []
    try:
        wait_for_agents(client, api, "bench", count)
        run_once(client, api, 50, "bench", manager.pid)  # warm-up
        for _ in range(args.repeat):
            alone.append(run_once(client, api, args.tasks, "bench", manager.pid))
            if args.idle:
                since = time.time()
                fleet = start_idle(home, api, args.idle)
                try:
                    wait_for_agents(client, api, "idle", args.idle, since)
                    wait_for_quiet(client, api, args.idle)
                    crowded.append(run_once(client, api, args.tasks, "bench", manager.pid))
                finally:
                    stop([fleet])
    except Exception:
        for log in sorted(home.glob("*.log")):  # the agents' own account, before it goes
            print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        stop(agents)
    label = f"{count} agent{'s' if count > 1 else ''} x {slots} slot{'s' if slots > 1 else ''}"
    rows = [_row(backend, label, alone)]
    if crowded:
        rows.append(_row(backend, f"{label}, {args.idle} idle agents", crowded))
    return rows


def _row(backend: str, label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "backend": backend,
        "setup": label,
        "tasks_per_s": statistics.median(run["tasks_per_s"] for run in runs),
        "manager_cpu_ms_per_task": statistics.median(run["manager_cpu_s"] for run in runs)
        * 1000
        / max(1, round(runs[0]["tasks_per_s"] * runs[0]["seconds"])),
        "runs": runs,
        "exchanges_per_task": statistics.median(
            run["store_calls_per_task"].get("exchange_agent_tasks", 0.0) for run in runs
        ),
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=int, default=200, help="idle agents (0: none)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--setups", default="4x8,1x1")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--queue-token",
        action="store_true",
        help="the agents present a token of their queue (default: the admin token)",
    )
    args = parser.parse_args()
    before = uptime()
    print(f"{args.tasks} independent no-op tasks per execution, {args.repeat} runs each; {before}")
    results: list[dict[str, Any]] = []
    print(
        "| store | where the tasks run | tasks/s (median) | manager CPU ms/task"
        " | exchanges/task | runs |"
    )
    print("|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        found = measure_backend(args, backend)
        for row in found:
            each = ", ".join(f"{run['tasks_per_s']:.0f}" for run in row["runs"])
            print(
                f"| {backend} | {row['setup']} | **{row['tasks_per_s']:,.0f}** |"
                f" {row['manager_cpu_ms_per_task']:.2f} | {row['exchanges_per_task']:.3f}"
                f" | {each} |",
                flush=True,
            )
        results += found
    after = uptime()
    print(f"after: {after}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = out / f"agents-{stamp}.json"
    document = {
        "machine": platform.platform(),
        "uptime_before": before,
        "uptime_after": after,
        "tasks": args.tasks,
        "results": results,
    }
    target.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {target}")


if __name__ == "__main__":
    main()
