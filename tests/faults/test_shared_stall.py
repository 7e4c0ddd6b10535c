"""Two managers on one store, stalled for everyone for longer than a lease (docs/reliability.md).

A stall that every process shares (a table locked on PostgreSQL, the file's write lock
held by a foreign process on SQLite) is nobody's death (docs/design.md, section 3): no
manager takes a lease over until it has itself seen the store answer for a whole lease
timeout since that lease could last have been renewed, and the owners ride the stall out.
Every execution completes, each operation runs once, requests answer 503 with
`Retry-After` in a few seconds, and both managers stay up.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PostgresServer
from faults.conftest import StartManager
from faults.harness import Manager, Tally, Watch, doubled, run_counts, wait_for
from faults.test_postgres_stall import ANSWER_WITHIN, answered_in_time, locked

pytestmark = pytest.mark.crash

LEASE = "5"  # seconds
STALL = 20.0  # seconds: four leases


@contextmanager
def sqlite_locked(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """A foreign connection holds the file's write lock (`BEGIN EXCLUSIVE`) for `seconds`."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            taken.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(30)
    try:
        yield holder
    finally:
        holder.join(seconds + 30)


def refused_in_time(manager: Manager, log: Path) -> httpx.Response:
    """A start asked during the stall: answered (503, with `Retry-After`) in time."""
    new = {"workflow": "faults.py:chain", "params": {"log": str(log), "steps": 1}}
    began = time.monotonic()
    answer = manager.call("POST", "/executions", json=new, timeout=ANSWER_WITHIN + 10)
    assert time.monotonic() - began <= ANSWER_WITHIN, time.monotonic() - began
    return answer


def ride_out_together(
    managers: StartManager,
    log: Path,
    stall: Callable[[], AbstractContextManager[Any]],
    tally: Tally,
) -> list[httpx.Response]:
    """Two managers run four executions (short and long operations, resumable and not)
    through `stall`; returns the answers of requests made during it."""
    # two executions each: both managers own leases through the stall
    first = managers("a", args=["--max-executions", "2"], DALSEGNO_LEASE_TIMEOUT=LEASE)
    second = managers("b", args=["--max-executions", "2"], DALSEGNO_LEASE_TIMEOUT=LEASE)
    running = [
        first.start_execution("faults.py:mixed", log=str(log), steps=6, pause=1.0),
        second.start_execution("faults.py:mixed", log=str(log), steps=6, pause=1.0),
        # a non-resumable operation ends during the stall, its end waits to be written
        first.start_execution("faults.py:mixed", log=str(log), steps=3, pause=1.0, first=12.0),
        # a resumable one runs through the whole stall
        second.start_execution(
            "faults.py:mixed", log=str(log), steps=3, pause=1.0, first=24.0, resumable_first=True
        ),
    ]
    wait_for(lambda: {entry[0] for entry in run_counts(log)} >= set(running))
    new = {"workflow": "faults.py:chain", "params": {"log": str(log), "steps": 1}}
    refused: list[httpx.Response] = []
    with (
        Watch(first) as reads,
        Watch(second, "POST", "/executions", json=new) as starts,
        stall(),
    ):
        tally.injected += 1
        time.sleep(1.0)
        refused = [refused_in_time(manager, log) for manager in (first, second)]
    answered_in_time(reads)
    answered_in_time(starts)
    ended = first.wait_ended([*running, *starts.created], timeout=60)
    failed = {key: value["error"] for key, value in ended.items() if value["status"] != "completed"}
    tally.lost = len(set(running) | set(starts.created)) - len(ended)
    tally.doubled = len(doubled(log))
    assert failed == {}
    assert doubled(log) == []  # no operation ran twice: no spurious takeover resumed one
    for manager in (first, second):
        assert manager.alive, manager.log()
        assert "took over" not in manager.log(), manager.log()
        assert "Traceback" not in manager.log(), manager.log()
    for manager in (first, second):
        owned = [key for key in running if f"claimed execution {key}" in manager.log()]
        assert len(owned) == 2, (manager.name, owned)
    tally.survived += 1
    tally.record()
    return refused


@pytest.mark.postgres_only("the lock is PostgreSQL's")
def test_two_managers_ride_out_a_table_locked_for_four_leases(
    managers: StartManager, postgres: PostgresServer, postgres_database: str, tmp_path: Path
) -> None:
    tally = Tally("PostgreSQL LOCK TABLE executions held 20 s, two managers, lease 5 s", "postgres")
    dsn = postgres.dsn(postgres_database)
    refused = ride_out_together(managers, tmp_path / "runs.log", lambda: locked(dsn, STALL), tally)
    for answer in refused:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "2"
        assert "lock_timeout" in answer.json()["error"]


@pytest.mark.postgres_only("the lock is PostgreSQL's")
def test_an_owner_slow_to_come_back_after_a_shared_stall_keeps_its_leases(
    managers: StartManager, postgres: PostgresServer, postgres_database: str, tmp_path: Path
) -> None:
    """The owner comes back 2.5 s after the store does (it was frozen: SIGSTOP), its leases
    long expired; the other manager, which saw the store answer again only then, waits a
    whole lease (5 s) before it may take them, and so takes nothing."""
    tally = Tally(
        "PostgreSQL LOCK TABLE executions held 12 s, the owner back 2.5 s later", "postgres"
    )
    log = tmp_path / "runs.log"
    owner = managers("a", args=["--max-executions", "2"], DALSEGNO_LEASE_TIMEOUT=LEASE)
    running = [
        owner.start_execution("faults.py:mixed", log=str(log), steps=4, pause=1.0),
        owner.start_execution(
            "faults.py:mixed", log=str(log), steps=3, pause=1.0, first=6.0, resumable_first=True
        ),
    ]
    wait_for(lambda: {entry[0] for entry in run_counts(log)} >= set(running))
    other = managers("b", DALSEGNO_LEASE_TIMEOUT=LEASE)
    assert owner.process is not None
    with locked(postgres.dsn(postgres_database), 12.0):
        tally.injected += 1
        time.sleep(1.0)
        owner.process.send_signal(signal.SIGSTOP)
    time.sleep(2.5)  # the store answers; the owner's leases expired long ago
    owner.process.send_signal(signal.SIGCONT)
    ended = other.wait_ended(running, timeout=60)
    failed = {key: value["error"] for key, value in ended.items() if value["status"] != "completed"}
    tally.lost = len(running) - len(ended)
    tally.doubled = len(doubled(log))
    assert failed == {}
    assert doubled(log) == []
    assert "took over" not in other.log(), other.log()
    assert owner.alive and other.alive
    tally.survived += 1
    tally.record()


@pytest.mark.postgres_only("the lock is PostgreSQL's")
def test_an_owner_past_its_patience_abandons_and_the_takeover_names_the_fault(
    managers: StartManager, postgres: PostgresServer, postgres_database: str, tmp_path: Path
) -> None:
    """A stall longer than an owner's patience (`PATIENCE` leases of 0.5 s: 10 s): the run
    is abandoned with nothing failed, and taken up again once the store answers; its
    history names the fault. The resumable operation whose end could not be written runs
    again, told that it resumes."""
    case = "PostgreSQL LOCK TABLE executions held 14 s, past the owner's patience (lease 0.5 s)"
    tally = Tally(case, "postgres")
    log = tmp_path / "runs.log"
    manager = managers(DALSEGNO_LEASE_TIMEOUT="0.5")
    running = manager.start_execution(
        "faults.py:mixed", log=str(log), steps=2, pause=0.2, first=2.0, resumable_first=True
    )
    wait_for(lambda: (running, "m0") in run_counts(log))
    with locked(postgres.dsn(postgres_database), 14.0):
        tally.injected += 1
    ended = manager.wait_ended([running], timeout=60)[running]
    assert ended["status"] == "completed", ended["error"]
    resumed = [
        event["message"] for event in manager.events(running) if event["type"] == "workflow_resumed"
    ]
    assert len(resumed) == 1, resumed
    assert "its previous owner abandoned the run: the store was unavailable" in resumed[0]
    assert "lock_timeout" in resumed[0]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [(entry["key"], entry["resume"]) for entry in entries]
    assert runs == [("m0", False), ("m0", True), ("m1", False)]
    assert manager.alive and "Traceback" not in manager.log()
    assert f"execution {running} left here" in manager.log()
    tally.doubled = len([key for key, _ in runs if key == "m1"]) - 1  # the non-resumable one
    tally.survived += 1
    tally.record()


@pytest.mark.sqlite_only("the lock is of the SQLite file")
def test_two_managers_ride_out_a_foreign_write_lock_for_three_leases(
    managers: StartManager, home: Path, tmp_path: Path
) -> None:
    tally = Tally("SQLite BEGIN EXCLUSIVE held 15 s by a foreign process, two managers", "sqlite")
    path = home / "dalsegno.db"
    stall = lambda: sqlite_locked(path, 15.0)  # noqa: E731
    refused = ride_out_together(managers, tmp_path / "runs.log", stall, tally)
    for answer in refused:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "2"
        assert "locked" in answer.json()["error"]
