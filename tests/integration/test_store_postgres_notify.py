"""Wake-ups: `notify` and `wait_for_notification`, across processes on PostgreSQL
(LISTEN/NOTIFY) and within one process on SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import PostgresServer
from dalsegno.model.errors import RefusedError
from dalsegno.store import Store, open_store
from dalsegno.store.postgres import PostgresStore

CHANNELS = ["dalsegno_pending", "dalsegno_other"]


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as a CLI and a manager would open it."""
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.store_url(request.getfixturevalue("postgres_database"))
    else:
        url = f"sqlite:///{tmp_path / 'dalsegno.db'}"
    stores = (open_store(url), open_store(url))
    yield stores
    for store in stores:
        store.close()


def timed(call: Callable[[], set[str]]) -> tuple[set[str], float]:
    began = time.monotonic()
    found = call()
    return found, time.monotonic() - began


def test_the_first_wait_subscribes_and_returns_at_once(two_stores: tuple[Store, Store]) -> None:
    _, waiter = two_stores
    found, took = timed(lambda: waiter.wait_for_notification(CHANNELS, 5.0))
    assert (found, took < 1.0) == (set(CHANNELS), True)
    found, took = timed(lambda: waiter.wait_for_notification(CHANNELS, 0.3))
    assert found == set()
    assert 0.25 < took < 2.0


def test_a_notification_wakes_a_waiter_of_another_store_at_once(
    two_stores: tuple[Store, Store],
) -> None:
    sender, waiter = two_stores
    waiter.wait_for_notification(CHANNELS, 0)
    sending = threading.Timer(0.2, lambda: sender.notify("dalsegno_pending"))
    sending.start()
    found, took = timed(lambda: waiter.wait_for_notification(CHANNELS, 10.0))
    sending.join()  # its connection is back in the pool before the store is closed
    assert found == {"dalsegno_pending"}
    assert took < 2.0


def test_a_notification_between_two_waits_is_not_lost(two_stores: tuple[Store, Store]) -> None:
    sender, waiter = two_stores
    waiter.wait_for_notification(CHANNELS, 0)
    sender.notify("dalsegno_other")
    sender.notify("dalsegno_other")
    time.sleep(0.1)
    found, took = timed(lambda: waiter.wait_for_notification(CHANNELS, 10.0))
    assert (found, took < 1.0) == ({"dalsegno_other"}, True)
    assert waiter.wait_for_notification(CHANNELS, 0.1) == set()  # both were consumed


def test_a_channel_is_a_plain_identifier(two_stores: tuple[Store, Store]) -> None:
    store, _ = two_stores
    for bad in ("", "Upper", "has space", 'x"; DROP TABLE executions; --', "x" * 64):
        with pytest.raises(RefusedError, match="channel"):
            store.notify(bad)
        with pytest.raises(RefusedError, match="channel"):
            store.wait_for_notification([bad], 0)


def test_a_lost_listener_connection_wakes_the_waiter_and_is_replaced(
    postgres: PostgresServer, postgres_database: str
) -> None:
    url = postgres.store_url(postgres_database)
    sender, waiter = open_store(url), open_store(url)
    try:
        assert isinstance(waiter, PostgresStore)
        waiter.wait_for_notification(CHANNELS, 0)
        listening = waiter._listener.connection
        assert listening is not None
        pid = listening.info.backend_pid
        postgres.admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        found, took = timed(lambda: waiter.wait_for_notification(CHANNELS, 10.0))
        assert found == set(CHANNELS)  # notifications may have been lost: look
        assert took < 3.0
        deadline = time.monotonic() + 5.0
        while waiter._listener.connection is None and time.monotonic() < deadline:
            time.sleep(0.05)
        replaced = waiter._listener.connection
        assert replaced is not None and replaced.info.backend_pid != pid
        sender.notify("dalsegno_pending")
        assert waiter.wait_for_notification(CHANNELS, 10.0) == {"dalsegno_pending"}
    finally:
        sender.close()
        waiter.close()


def test_many_threads_wait_at_once_on_one_listen_connection(
    postgres: PostgresServer, postgres_database: str
) -> None:
    """The agents' long polls each wait: every waiter wakes, and the store holds one
    LISTEN connection however many wait."""
    url = postgres.store_url(postgres_database)
    sender, waiter = open_store(url), open_store(url)
    waiters = 20
    subscribed = threading.Barrier(waiters + 1)
    woken: list[set[str]] = []

    def wait() -> None:
        waiter.wait_for_notification(CHANNELS, 0)  # each thread's first wait returns at once
        subscribed.wait(10)
        woken.append(waiter.wait_for_notification(CHANNELS, 10.0))

    threads = [threading.Thread(target=wait) for _ in range(waiters)]
    try:
        for thread in threads:
            thread.start()
        subscribed.wait(10)
        time.sleep(0.2)  # every thread is in its wait
        began = time.monotonic()
        sender.notify("dalsegno_other")
        for thread in threads:
            thread.join(10)
        assert woken == [{"dalsegno_other"}] * waiters
        assert time.monotonic() - began < 2.0
        listens = postgres.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (postgres_database,),
        ).fetchone()
        assert listens == (1,)
    finally:
        sender.close()
        waiter.close()


def test_a_wait_on_a_closed_store_lasts_its_timeout(
    postgres: PostgresServer, postgres_database: str
) -> None:
    """A thread still waiting when its store is closed must not spin in its loop."""
    store = open_store(postgres.store_url(postgres_database))
    store.wait_for_notification(CHANNELS, 0)
    store.close()
    found, took = timed(lambda: store.wait_for_notification(CHANNELS, 0.3))
    assert found == set()
    assert took >= 0.25
