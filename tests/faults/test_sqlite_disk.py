"""The SQLite store's disk full (a 4 MB tmpfs home) and read-only (`chattr +i`) under a
running manager, for less than a lease: the faults of the store are not the work's
(docs/design.md, section 3). Writes wait; a request that must write retries for 5 s,
then answers 503 with `Retry-After`; reads go on; once the disk is back every execution
completes, and no operation ran twice.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faults.conftest import StartManager
from faults.harness import Tally, Watch, doubled, run_counts, wait_for

pytestmark = [pytest.mark.crash, pytest.mark.sqlite_only("the fault is of the SQLite file")]

LEASE = "15"  # seconds: the faults below last less
FAULT = 7.0  # seconds each fault lasts: longer than a request's retries (5 s)
Fault = Callable[[], contextlib.AbstractContextManager[None]]


@pytest.fixture
def small_home(home: Path) -> Iterator[Path]:
    """The test's home on a tmpfs of 4 MB, unmounted after the managers were stopped."""
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(home)]
    subprocess.run(mount, check=True)
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


@contextlib.contextmanager
def full(disk: Path) -> Iterator[None]:
    """Fill the disk under `disk` to its last byte; free it afterwards."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    try:
        yield
    finally:
        filler.unlink()


@contextlib.contextmanager
def read_only(files: list[Path]) -> Iterator[None]:
    """`chattr +i` on the store file and its WAL (not the -shm: SQLite maps it in memory,
    and a process writing a page of an immutable mapping gets SIGBUS)."""
    present = [str(path) for path in files if path.exists()]
    subprocess.run(["chattr", "+i", *present], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *present], check=False)


def ride_out(managers: StartManager, log: Path, fault: Fault, tally: Tally) -> Watch:
    """Executions run through `fault`; every one, and every start a 201 acknowledged
    during it, completes. Returns the watched starts."""
    manager = managers(DALSEGNO_LEASE_TIMEOUT=LEASE)
    running = [
        manager.start_execution("faults.py:chain", log=str(log), steps=6, pause=0.2)
        for _ in range(4)
    ]
    wait_for(lambda: {entry[0] for entry in run_counts(log)} >= set(running))
    new = {"workflow": "faults.py:chain", "params": {"log": str(log), "steps": 2}}
    with Watch(manager) as reads, Watch(manager, "POST", "/executions", json=new) as starts:
        time.sleep(0.5)
        with fault():
            tally.injected += 1
            time.sleep(FAULT)
        time.sleep(1.0)
    reads.check((200,))  # reading never needed the disk to have room
    starts.check((201, 503))
    ended = manager.wait_ended([*running, *starts.created], timeout=90)
    failed = {key: value["error"] for key, value in ended.items() if value["status"] != "completed"}
    assert failed == {}
    tally.lost = len(set(running) | set(starts.created)) - len(ended)
    tally.doubled = len(doubled(log))
    assert doubled(log) == []
    assert manager.alive and "Traceback" not in manager.log()
    return starts


def test_a_full_disk_is_ridden_out(
    managers: StartManager, small_home: Path, tmp_path: Path
) -> None:
    tally = Tally("SQLite disk full (4 MB tmpfs)", "sqlite")
    starts = ride_out(managers, tmp_path / "runs.log", lambda: full(small_home), tally)
    refused = [body for _, status, body in starts.answers if status == 503]
    assert refused and all("disk is full" in body for body in refused), refused
    tally.survived += 1
    tally.record()


def test_a_read_only_file_is_ridden_out(managers: StartManager, home: Path, tmp_path: Path) -> None:
    tally = Tally("SQLite file read-only (chattr +i)", "sqlite")
    files = [home / "dalsegno.db", home / "dalsegno.db-wal"]
    starts = ride_out(managers, tmp_path / "runs.log", lambda: read_only(files), tally)
    assert any(status == 503 for _, status, _ in starts.answers)
    tally.survived += 1
    tally.record()
