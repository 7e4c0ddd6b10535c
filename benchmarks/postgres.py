"""PostgreSQL beside SQLite: the chain and wide graphs run by 1 and 2 `dalsegno manager`s.

    .venv/bin/python benchmarks/postgres.py [--repeat 3] [--only chain,wide]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Every run starts real `dalsegno manager` processes on a fresh store (a new SQLite file, or
a new database on the PostgreSQL server), starts executions through the REST API and reads
their times back from the store. Figures, for each backend:

- one: one execution (chain: 2,000 tasks in sequence; wide: 10,000 independent ones) on one
  manager: tasks/s over the execution (`started_at` -> `ended_at` in the store).
- 1 manager / 2 managers: two such executions started at once, on one manager
  (`--max-executions 2`) or on two (`--max-executions 1` each, so each runs one: checked
  from the worker recorded on the attempts); tasks/s from the first start to the last end.

SQLite is one file on one machine: its two managers share the file's single writer.
Medians are reported; every run is printed. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from dalsegno.store import open_store

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads.py"
SIZES = {"chain": 2000, "wide": 10000}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def fresh_store(backend: str, server: str) -> Iterator[tuple[Path, str]]:
    """A home and the URL of an empty store on `backend`; removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-pg-"))
    name = f"dalsegno_bench_{uuid.uuid4().hex[:10]}"
    try:
        if backend == "sqlite":
            yield home, f"sqlite:///{home / 'dalsegno.db'}"
        else:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            base, _, _ = server.rpartition("/")
            yield home, f"{base}/{name}"
    finally:
        if backend != "sqlite":
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(home, ignore_errors=True)


def start_manager(
    home: Path, url: str, max_executions: int, workflows: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A manager on `url` serving the workflows of `workflows` (default: this script's
    workloads.py; a manager runs only the workflows it is allowed, docs/security.md)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env.update(DALSEGNO_HOME=str(home), DALSEGNO_STORE=url)
    env["DALSEGNO_WORKFLOWS"] = str(workflows or WORKLOADS)
    command = [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*command, "--max-executions", str(max_executions)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            token = (home / "token").read_text().strip()
            answer = httpx.get(f"{api}/executions", headers={"Authorization": f"Bearer {token}"})
            if answer.status_code == 200:
                return proc, api
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the manager did not start")


def statuses(client: httpx.Client, api: str, ids: list[str]) -> dict[str, str]:
    """The executions' states, from the list (light: no tasks) so that looking costs the
    manager nothing next to the work it measures."""
    answer = client.get(f"{api}/executions")
    if answer.status_code != 200:
        print(f"GET /executions: {answer.status_code} {answer.text[:200]}", file=sys.stderr)
        return {}
    found = {e["id"]: e for e in answer.json() if e["id"] in ids}
    for execution in found.values():
        if execution["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"execution {execution['id']} ended: {execution['error']}")
    return {i: str(e["status"]) for i, e in found.items()}


def measure(
    backend: str, server: str, graph: str, executions: int, managers: int
) -> dict[str, Any]:
    """Start `executions` executions of `graph` on `managers` managers; their times."""
    n = SIZES[graph]
    with fresh_store(backend, server) as (home, url):
        open_store(url).close()  # migrated before the managers race to it
        per_manager = max(1, executions // managers)
        procs = [start_manager(home, url, per_manager) for _ in range(managers)]
        try:
            headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
            api = procs[0][1]
            with httpx.Client(headers=headers, timeout=60) as client:
                ids = [
                    client.post(
                        f"{api}/executions",
                        json={"workflow": f"{WORKLOADS}:{graph}", "params": {"n": n}},
                    ).json()["id"]
                    for _ in range(executions)
                ]
                deadline = time.monotonic() + 600
                while list(statuses(client, api, ids).values()) != ["completed"] * len(ids):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{graph} on {backend} did not complete")
                    time.sleep(0.25)
            store = open_store(url)
            try:
                records = [store.get_execution(i) for i in ids]
                workers = {store.list_attempts(i)[0].worker for i in ids}
            finally:
                store.close()
        finally:
            for proc, _ in procs:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    starts = [r.started_at for r in records if r is not None and r.started_at is not None]
    ends = [r.ended_at for r in records if r is not None and r.ended_at is not None]
    span = max(ends) - min(starts)
    return {
        "backend": backend,
        "graph": graph,
        "executions": executions,
        "managers": managers,
        "managers_that_ran_them": len(workers),
        "seconds": span,
        "tasks_per_s": n * executions / span,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="chain,wide")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    cases = [(1, 1), (2, 1), (2, 2)]  # (executions, managers)
    for graph in args.only.split(","):
        for backend in ("sqlite", "postgres"):
            for executions, managers in cases:
                runs = [
                    measure(backend, args.postgres, graph, executions, managers)
                    for _ in range(args.repeat)
                ]
                for run in runs:
                    print(json.dumps(run), flush=True)
                figure = statistics.median(run["tasks_per_s"] for run in runs)
                spread = {run["managers_that_ran_them"] for run in runs}
                results.append({**runs[0], "tasks_per_s": figure, "runs": runs})
                print(
                    f"== {graph:5} {backend:8} executions={executions} managers={managers}"
                    f" (ran on {sorted(spread)}): median {figure:,.0f} tasks/s",
                    flush=True,
                )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = out / f"postgres-{stamp}.json"
    target.write_text(
        json.dumps({"machine": platform.platform(), "results": results}, indent=2) + "\n"
    )
    print(f"results: {target}")


if __name__ == "__main__":
    main()
