"""Manager benchmarks: REST start-to-completed latency, and takeover after a lease expires.

    .venv/bin/python benchmarks/manager.py [--repeat 30]

- latency: `POST /api/v1/executions` of a one-task workflow until `GET` shows it
  `completed` (polled every 2 ms), against a real `dalsegno manager` process.
- takeover: manager A runs a chain of 50 ms tasks with a 2 s lease; A is frozen with
  SIGSTOP (alive, so its lease is not void: it must expire); manager B takes over. Figure:
  seconds from A's lease expiry to the first task B starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_manager(home: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{port}", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            token = (home / "token").read_text().strip()
            httpx.get(f"{url}/executions", headers={"Authorization": f"Bearer {token}"})
            return proc, url
        except (OSError, httpx.HTTPError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the manager did not start")


def latency(repeat: int) -> list[float]:
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-mgr-"))
    proc, url = start_manager(home)
    try:
        headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
        found = []
        with httpx.Client(headers=headers) as client:
            for i in range(repeat + 3):
                began = time.perf_counter()
                created = client.post(
                    f"{url}/executions",
                    json={"workflow": f"{WORKLOADS}:chain", "params": {"n": 1}},
                ).json()
                while client.get(f"{url}/executions/{created['id']}").json()["status"] != (
                    "completed"
                ):
                    time.sleep(0.002)
                if i >= 3:  # the first runs import the workflow module
                    found.append(time.perf_counter() - began)
        return found
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def takeover() -> float:
    home = Path(tempfile.mkdtemp(prefix="dalsegno-bench-takeover-"))
    first, url = start_manager(home, "--lease-timeout", "2")
    second = None
    try:
        headers = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
        created = httpx.post(
            f"{url}/executions",
            headers=headers,
            json={"workflow": f"{WORKLOADS}:slow_chain", "params": {"n": 200, "seconds": 0.05}},
        ).json()
        time.sleep(1.5)
        first.send_signal(signal.SIGSTOP)
        second, _ = start_manager(home, "--lease-timeout", "2")
        database = home / "dalsegno.db"
        with sqlite3.connect(database) as db:
            expires = db.execute(
                "SELECT lease_expires_at FROM executions WHERE id = ?", (created["id"],)
            ).fetchone()[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(database) as db:
                row = db.execute(
                    "SELECT min(e.created_at) FROM events e WHERE e.execution_id = ? AND"
                    " e.type = 'task_started' AND e.id > (SELECT max(id) FROM events WHERE"
                    " execution_id = ? AND type = 'workflow_resumed')",
                    (created["id"], created["id"]),
                ).fetchone()
            if row and row[0]:
                return float(row[0]) - float(expires)
            time.sleep(0.05)
        raise RuntimeError("no takeover")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        if second is not None:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    found = latency(args.repeat)
    print(
        f"POST -> completed, one-task workflow: median {statistics.median(found) * 1000:.1f} ms"
        f" (min {min(found) * 1000:.1f}, max {max(found) * 1000:.1f}, n={len(found)})"
    )
    gaps = [takeover() for _ in range(3)]
    print(
        f"lease expiry -> next task started by the new owner: median {statistics.median(gaps):.3f}"
        f" s (runs {', '.join(f'{g:.3f}' for g in gaps)})"
    )
    print(json.dumps({"latency_ms": [g * 1000 for g in found], "takeover_s": gaps}))


if __name__ == "__main__":
    main()
