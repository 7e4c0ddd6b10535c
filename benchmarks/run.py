"""dalsegno's benchmarks, with DBOS measured in the same run.

    .venv/bin/python benchmarks/run.py [--repeat 5] [--no-dbos] [--only chain,wide,resume,rss]

Everything goes through the real CLI (`dalsegno run`, `dalsegno executions resume`) on a
fresh SQLite file per run (WAL, synchronous=FULL: every commit is fsynced). Figures:

- chain: a 2,000-task chain of no-op operations; tasks/s over the execution's own time
  (started_at -> ended_at in the store) and over the whole command (process start to exit).
- wide: 10,000 independent no-op tasks, the same two ways.
- dbos: DBOS Transact, SQLite system database, 2,000 sequential no-op steps in one workflow
  (benchmarks/peers/dbos_chain.py in its own virtualenv), steps/s of the workflow call.
- resume: a 100,000-task wide execution killed (SIGKILL) after 50,000 tasks succeeded;
  seconds from launching `dalsegno executions resume ID` to the first new task starting.
- rss: peak RSS of `dalsegno run` for a 100,000-task wide execution.

Medians are reported; every run is printed. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads.py"
DALSEGNO = [sys.executable, "-m", "dalsegno"]
DBOS_VENV = Path(os.environ.get("DBOS_VENV", Path.home() / ".cache/dalsegno-bench/dbos-venv"))


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    env.update(extra)
    return env


def newest_execution(home: Path) -> tuple[str, float, float]:
    with sqlite3.connect(home / "dalsegno.db") as db:
        row = db.execute(
            "SELECT id, started_at, ended_at FROM executions ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    return row[0], row[1], row[2]


def run_workflow(name: str, n: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-"))
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [*DALSEGNO, "run", f"{WORKLOADS}:{name}", "-p", f"n={n}", "-q"],
            env=env_for(home),
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed: {done.stderr}")
        _, start, end = newest_execution(home)
        return {
            "tasks": n,
            "execution_s": end - start,
            "tasks_per_s": n / (end - start),
            "wall_s": wall,
            "wall_tasks_per_s": n / wall,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def prepare_half_done(n: int) -> Path:
    """A 100,000-task execution killed by SIGKILL once half its tasks succeeded."""
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-resume-"))
    subprocess.run(
        [*DALSEGNO, "run", f"{WORKLOADS}:wide", "-p", f"n={n}", "-q"],
        env=env_for(home, DALSEGNO_CRASH_AT=f"before_operation:t{n // 2}"),
        capture_output=True,
        check=False,
    )
    with sqlite3.connect(home / "dalsegno.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        done = db.execute("SELECT count(*) FROM tasks WHERE status='succeeded'").fetchone()[0]
    if done < n // 2 - 50:
        raise RuntimeError(f"the killed run left {done} succeeded tasks, expected about {n // 2}")
    return home


def run_resume(snapshot: Path) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-resume-run-"))
    try:
        shutil.copy(snapshot / "dalsegno.db", home / "dalsegno.db")
        execution_id, _, _ = newest_execution(home)
        launched = time.time()
        done = subprocess.run(
            [*DALSEGNO, "executions", "resume", execution_id, "-q"],
            env=env_for(home),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"resume failed: {done.stderr}")
        with sqlite3.connect(home / "dalsegno.db") as db:
            resumed = db.execute(
                "SELECT max(id) FROM events WHERE type='workflow_resumed'"
            ).fetchone()[0]
            first = db.execute(
                "SELECT min(created_at) FROM events WHERE type='task_started' AND id > ?",
                (resumed,),
            ).fetchone()[0]
            rerun = db.execute(
                "SELECT count(*) FROM attempts a JOIN attempts b ON a.task_id = b.task_id"
                " AND b.number > a.number WHERE a.outcome = 'succeeded'"
            ).fetchone()[0]
        return {"first_new_task_s": first - launched, "succeeded_tasks_run_again": float(rerun)}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_rss(n: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-rss-"))
    try:
        code = (
            "import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                *DALSEGNO,
                "run",
                f"{WORKLOADS}:wide",
                "-p",
                f"n={n}",
                "-q",
            ],
            env=env_for(home),
            capture_output=True,
            text=True,
            check=True,
        )
        return {"tasks": n, "peak_rss_mb": int(done.stdout.strip()) / 1024}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_dbos(steps: int, repeat: int) -> dict[str, object]:
    subprocess.run(
        ["bash", str(ROOT / "benchmarks/peers/setup_dbos_venv.sh")], check=True, capture_output=True
    )
    done = subprocess.run(
        [
            str(DBOS_VENV / "bin/python"),
            str(ROOT / "benchmarks/peers/dbos_chain.py"),
            "--steps",
            str(steps),
            "--repeat",
            str(repeat),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--only", default="chain,wide,dbos,resume,rss")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, object] = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }

    def report(name: str, runs: list[dict[str, float]], keys: list[str]) -> None:
        for run in runs:
            print(f"  {name}: " + ", ".join(f"{k}={run[k]:.3f}" for k in keys), flush=True)
        medians = {key: median(runs, key) for key in keys}
        results[name] = {"runs": runs, "median": medians}
        print(
            f"{name} median: " + ", ".join(f"{k}={v:.3f}" for k, v in medians.items()), flush=True
        )

    if "chain" in only:
        report(
            "chain_2000",
            [run_workflow("chain", 2000) for _ in range(args.repeat)],
            ["tasks_per_s", "wall_tasks_per_s"],
        )
    if "dbos" in only and not args.no_dbos:
        dbos = run_dbos(2000, args.repeat)
        results["dbos_chain_2000"] = dbos
        print(f"dbos median: steps_per_s={dbos['median_steps_per_s']}", flush=True)
    if "wide" in only:
        report(
            "wide_10000",
            [run_workflow("wide", 10000) for _ in range(args.repeat)],
            ["tasks_per_s", "wall_tasks_per_s"],
        )
    if "resume" in only:
        snapshot = prepare_half_done(100_000)
        try:
            report(
                "resume_100000_half_done",
                [run_resume(snapshot) for _ in range(max(3, args.repeat))],
                ["first_new_task_s", "succeeded_tasks_run_again"],
            )
        finally:
            shutil.rmtree(snapshot, ignore_errors=True)
    if "rss" in only:
        report("rss_100000", [run_rss(100_000) for _ in range(3)], ["peak_rss_mb"])
    if "chain_2000" in results and "dbos_chain_2000" in results:
        ours = results["chain_2000"]["median"]  # type: ignore[index]
        theirs = float(results["dbos_chain_2000"]["median_steps_per_s"])  # type: ignore[index]
        results["chain_vs_dbos"] = {
            "execution": ours["tasks_per_s"] / theirs,
            "wall": ours["wall_tasks_per_s"] / theirs,
        }
        print(
            f"chain vs DBOS: x{ours['tasks_per_s'] / theirs:.2f} (execution), "
            f"x{ours['wall_tasks_per_s'] / theirs:.2f} (whole command)"
        )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
