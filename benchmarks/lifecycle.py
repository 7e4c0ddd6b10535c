"""The built-in install and uninstall of a large deployment, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/lifecycle.py [--instances 1000] [--repeat 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

A blueprint of one network and `--instances` servers that depend on it, with no operation
given (every step is the built-in no-op, so the figures are the engine's and the store's
own: one subgraph and three tasks per instance, each task's success committed with its
instance's state). A deployment of it is created (its instances planned and stored in one
transaction), installed and uninstalled in this process, on a fresh store each run
(docs/lifecycle.md). Figures: the seconds each took, the instances per second of the
install, and the store's size after the install (the SQLite file with its WAL, or the
PostgreSQL database).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres import fresh_store

from dalsegno.engine.runner import EngineConfig
from dalsegno.service.executions import ExecutionService
from dalsegno.store import open_store

BLUEPRINT = """\
inputs:
  servers: {type: integer, default: 1000}
node_templates:
  network:
    type: bench.network
  server:
    type: bench.server
    instances: {get_input: servers}
    relationships:
      - {type: depends_on, target: network}
"""


def store_size(url: str, home: Path) -> int:
    if url.startswith("sqlite"):
        return sum(path.stat().st_size for path in home.glob("dalsegno.db*"))
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def one_run(backend: str, server: str, instances: int) -> dict[str, float]:
    with fresh_store(backend, server) as (home, url):
        store = open_store(url)
        try:
            service = ExecutionService(store, EngineConfig(concurrency=32))
            began = time.perf_counter()
            service.blueprints.upload(BLUEPRINT, "bench")
            service.deployments.create("bench", "bench", {"servers": instances})
            created = time.perf_counter() - began
            began = time.perf_counter()
            installed = service.start("install", {}, deployment="bench")
            install = time.perf_counter() - began
            assert installed.status == "completed", installed.outcome
            size = store_size(url, home)
            began = time.perf_counter()
            removed = service.start("uninstall", {}, deployment="bench")
            uninstall = time.perf_counter() - began
            assert removed.status == "completed", removed.outcome
            states = {i.state.value for i in service.deployments.get("bench").instances}
            assert states == {"deleted"}, states
        finally:
            store.close()
    return {"create": created, "install": install, "uninstall": uninstall, "size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    for backend in ("sqlite", "postgres"):
        if args.only and backend != args.only:
            continue
        runs = [one_run(backend, args.postgres, args.instances) for _ in range(args.repeat)]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        total = args.instances + 1
        print(
            f"{backend}: {total} instances, median of {args.repeat}: create "
            f"{median['create']:.2f} s, install {median['install']:.2f} s "
            f"({total / median['install']:.0f} instances/s), uninstall "
            f"{median['uninstall']:.2f} s, store after install "
            f"{median['size'] / 1e6:.1f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
