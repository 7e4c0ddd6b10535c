"""The SQLite file under a running manager: deleted, replaced, corrupted (docs/reliability.md).

Nothing written after the fault is acknowledged, every request answers 503 with the reason
(never a 500), the manager says it once in its log and takes no more work (no takeover
loop), and no process opens the store again, or a new empty one in its place, until an
operator acts: a restart refuses in one line, exit 2, and so does the CLI.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import WORKFLOWS, cli_env, run_cli
from faults.conftest import StartManager
from faults.harness import Manager, Tally, Watch, doubled, free_port, run_counts, wait_for

pytestmark = [pytest.mark.crash, pytest.mark.sqlite_only("the fault is of the SQLite file")]

PAGE = 4096


def database(home: Path) -> Path:
    return home / "dalsegno.db"


def checkpoint(path: Path) -> None:
    """Move every committed page from the WAL into the file itself."""
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def backup(path: Path, to: Path) -> None:
    source, target = sqlite3.connect(path, timeout=30), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def refused_restart(home: Path, expected: str) -> None:
    """A manager, and a CLI command, refuse the store in one line with exit code 2."""
    manager = subprocess.run(
        [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=WORKFLOWS,
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    listed = run_cli(home, "executions", "list")
    for done in (manager, listed):
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1, done.stderr
        assert expected in lines[0] and "refusing to open the store" in lines[0], lines[0]


def ready_reason(manager: Manager) -> str:
    answer = httpx.get(f"{manager.site}/readyz", timeout=10)
    return "" if answer.status_code == 200 else str(answer.json()["reason"])


def one_clear_line(manager: Manager, expected: str) -> None:
    log = manager.log()
    said = [line for line in log.splitlines() if "the store cannot be used any more" in line]
    assert len(said) == 1 and expected in said[0], said
    assert "Traceback" not in log
    assert "took over" not in log  # no takeover loop


def test_a_deleted_file_is_noticed_and_nothing_is_acknowledged_into_it(
    managers: StartManager, home: Path, tmp_path: Path
) -> None:
    tally = Tally("SQLite file deleted under the manager", "sqlite")
    log, path = tmp_path / "runs.log", database(home)
    manager = managers(DALSEGNO_LEASE_TIMEOUT="3")
    kept = manager.start_execution("faults.py:chain", log=str(log), steps=2)
    manager.wait_ended([kept])
    backup(path, tmp_path / "backup.db")
    running = [
        manager.start_execution("faults.py:chain", log=str(log), steps=3, pause=0.5)
        for _ in range(3)
    ]
    wait_for(lambda: {entry[0] for entry in run_counts(log)} >= set(running))

    with Watch(manager) as reads:
        for name in ("dalsegno.db", "dalsegno.db-wal", "dalsegno.db-shm"):
            (home / name).unlink(missing_ok=True)
        tally.injected += 1
        new = {"workflow": "faults.py:chain", "params": {"log": str(log)}}
        answers = [manager.call("POST", "/executions", json=new) for _ in range(5)]
        wait_for(lambda: "was deleted while in use" in ready_reason(manager))

    assert {answer.status_code for answer in answers} == {503}  # nothing acknowledged
    assert all("was deleted while in use" in answer.json()["error"] for answer in answers)
    assert "Retry-After" not in answers[0].headers  # trying again will not help
    reads.check((200, 503))
    assert manager.call("GET", f"/executions/{kept}").status_code == 503
    assert httpx.get(f"{manager.site}/healthz").status_code == 200  # the process is up
    assert manager.alive
    one_clear_line(manager, f"the store file {path} was deleted while in use")
    assert not path.exists()  # no process made a new, empty file in its place
    manager.kill()
    refused_restart(home, f"the store file {path} was deleted while in use")

    # The operator restores the last backup and says so: the store is back as it was then.
    backup(tmp_path / "backup.db", path)
    (home / "dalsegno.db.fault").unlink()
    restarted = managers("restarted")
    assert restarted.execution(kept)["status"] == "completed"
    assert doubled(log) == []
    tally.survived += 1
    tally.record()


def test_a_replaced_file_is_noticed_and_its_replacement_is_not_used_silently(
    managers: StartManager, home: Path, tmp_path: Path
) -> None:
    tally = Tally("SQLite file replaced under the manager", "sqlite")
    log, path = tmp_path / "runs.log", database(home)
    manager = managers()
    first = manager.start_execution("faults.py:chain", log=str(log), steps=1)
    manager.wait_ended([first])
    other = tmp_path / "other.db"
    backup(path, other)
    os.replace(other, path)  # another file where the store was
    tally.injected += 1

    new = {"workflow": "faults.py:chain", "params": {"log": str(log)}}
    answer = manager.call("POST", "/executions", json=new)

    assert answer.status_code == 503
    assert "was replaced by another file while in use" in answer.json()["error"]
    assert manager.call("GET", "/executions").status_code == 503
    one_clear_line(manager, f"the store file {path} was replaced by another file")
    manager.kill()
    refused_restart(home, "was replaced by another file while in use")
    tally.survived += 1
    tally.record()


def corrupt(path: Path) -> None:
    """Overwrite every page of the file but its first with garbage, as a failing disk or a
    stray writer would (the header stays: the file still opens)."""
    checkpoint(path)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        for offset in range(PAGE, size, PAGE):
            handle.seek(offset)
            handle.write(os.urandom(PAGE))
        handle.flush()
        os.fsync(handle.fileno())


def test_a_corrupt_file_stops_the_manager_with_one_clear_line_and_no_takeover_loop(
    managers: StartManager, home: Path, tmp_path: Path
) -> None:
    tally = Tally("SQLite file corrupted under the manager", "sqlite")
    log, path = tmp_path / "runs.log", database(home)
    manager = managers(DALSEGNO_LEASE_TIMEOUT="2")
    ended = [manager.start_execution("faults.py:chain", log=str(log), steps=3) for _ in range(20)]
    manager.wait_ended(ended)
    hold = tmp_path / "hold"
    hold.touch()
    held = manager.start_execution("faults.py:chain", log=str(log), steps=2, hold=str(hold))
    wait_for(lambda: (held, "s0") in run_counts(log))

    with Watch(manager) as reads:
        corrupt(path)
        tally.injected += 1
        answers = []
        new = {"workflow": "faults.py:chain", "params": {"log": str(log), "steps": 1}}
        for execution_id in ended:  # reads and writes go on: each one meets the fault
            answers.append(manager.call("GET", f"/executions/{execution_id}"))
            answers.append(manager.call("POST", "/executions", json=new))
        wait_for(lambda: "is corrupt" in ready_reason(manager), timeout=20)
        hold.unlink()
        later = manager.call("GET", "/executions")

    codes = {answer.status_code for answer in answers}
    assert codes <= {200, 201, 503} and 503 in codes, codes
    assert later.status_code == 503 and "is corrupt" in later.json()["error"]
    reads.check((200, 503))
    assert manager.alive
    one_clear_line(manager, f"the store file {path} is corrupt")
    listed = run_cli(home, "executions", "list")
    assert listed.returncode == 2
    assert len(listed.stderr.strip().splitlines()) == 1
    assert "is corrupt" in listed.stderr
    manager.kill()
    refused_restart(home, f"the store file {path} is corrupt")
    assert doubled(log) == []
    tally.survived += 1
    tally.record()
