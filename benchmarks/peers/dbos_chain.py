"""Peer benchmark: a chain of N sequential no-op steps in DBOS Transact.

Setup and run (from the repo root):

    bash benchmarks/peers/setup_dbos_venv.sh
    ${DBOS_VENV:-$HOME/.cache/dalsegno-bench/dbos-venv}/bin/python \
        benchmarks/peers/dbos_chain.py [--steps 2000] [--repeat 5]

Uses a SQLite system database in a fresh temp dir, with DBOS's default
durability settings (nothing is tuned). Prints one JSON line per timed run,
then a JSON summary line.
"""

import argparse
import importlib.metadata
import json
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID


@DBOS.step()
def noop_step(i: int) -> int:
    return i


@DBOS.workflow()
def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += noop_step(i)
    return total


def sqlite_pragmas(dbos: DBOS) -> dict:
    """Read journal_mode/synchronous from a connection of DBOS's own engine."""
    try:
        with dbos._sys_db.engine.connect() as conn:
            return {
                name: conn.execute(sa.text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout")
            }
    except Exception as exc:  # private API; may change between versions
        return {"journal_mode": "unknown", "synchronous": "unknown", "error": repr(exc)}


def timed_run(dbos: DBOS, n: int) -> float:
    wf_id = str(uuid.uuid4())
    with SetWorkflowID(wf_id):
        start = time.perf_counter()
        result = chain(n)
        elapsed = time.perf_counter() - start
    assert result == n * (n - 1) // 2
    # Sanity check (untimed): every step's output was durably recorded.
    with dbos._sys_db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT COUNT(*) FROM operation_outputs WHERE workflow_uuid = :w"), {"w": wf_id}
        ).scalar()
    assert rows == n, f"expected {n} recorded steps, found {rows}"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup-steps", type=int, default=50)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="dbos-bench-")
    db_path = Path(tmp.name) / "dbos_sys.sqlite"
    config: DBOSConfig = {
        "name": "dalsegno-peer-bench",
        "system_database_url": f"sqlite:///{db_path}",
        "run_admin_server": False,
        "log_level": "WARNING",
    }
    dbos = DBOS(config=config)
    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:
        pragmas = sqlite_pragmas(dbos)
        timed_run(dbos, args.warmup_steps)
        runs = []
        for r in range(args.repeat):
            elapsed = timed_run(dbos, args.steps)
            run = {
                "run": r,
                "steps": args.steps,
                "seconds": round(elapsed, 4),
                "steps_per_s": round(args.steps / elapsed, 1),
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
    finally:
        DBOS.destroy()
        tmp.cleanup()

    print(
        json.dumps(
            {
                "peer": "dbos",
                "dbos_version": importlib.metadata.version("dbos"),
                "sqlalchemy_version": sa.__version__,
                "system_database": "sqlite (fresh temp file)",
                "sqlite": pragmas,
                "steps": args.steps,
                "median_steps_per_s": round(statistics.median(r["steps_per_s"] for r in runs), 1),
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
