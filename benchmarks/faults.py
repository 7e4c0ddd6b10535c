"""The figures of the fault suite (docs/reliability.md): faults injected, survived, lost,
doubled, by case and backend, from one run of `tests/faults/`.

    .venv/bin/python benchmarks/faults.py [PYTEST ARGS...]

Runs `pytest tests/faults` (as root: the cases mount a tmpfs and `chattr +i` files) with
`DALSEGNO_FAULT_FIGURES` naming a file each case appends its tally to, then prints one
Markdown table. A case that failed writes no tally: it shows as a failure of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(arguments: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        figures = Path(scratch) / "figures.jsonl"
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:randomly", *arguments],
            cwd=ROOT,
            env={**os.environ, "DALSEGNO_FAULT_FIGURES": str(figures)},
            check=False,
        )
        took = time.monotonic() - began
        lines = figures.read_text().splitlines() if figures.exists() else []
        rows = [json.loads(line) for line in lines]
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        total = totals[(row["case"], row["backend"])]
        for index, name in enumerate(("injected", "survived", "lost", "doubled")):
            total[index] += int(row[name])
    print("| case | backend | injected | survived | lost | doubled |")
    print("|---|---|---:|---:|---:|---:|")
    for (case, backend), (injected, survived, lost, doubled) in sorted(totals.items()):
        print(f"| {case} | {backend} | {injected} | {survived} | {lost} | {doubled} |")
    sums = [sum(total[i] for total in totals.values()) for i in range(4)]
    print(f"| **all** | | **{sums[0]}** | **{sums[1]}** | **{sums[2]}** | **{sums[3]}** |")
    print(f"\npytest exit code {done.returncode}, {took:.0f} s")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
