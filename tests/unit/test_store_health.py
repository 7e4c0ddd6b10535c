"""The takeover rule of a shared stall, and an owner's patience (engine/store_health.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from dalsegno.engine.lease import this_owner
from dalsegno.engine.store_health import PATIENCE, RECENT, SLOW, StoreHealth
from dalsegno.model.records import LeaseOwner

LEASE = 5.0
ELSEWHERE = LeaseOwner(host="another-host", pid=1, proc_start="1")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def health_seen_healthy_since(start: float) -> tuple[StoreHealth, Clock]:
    clock = Clock(start)
    return StoreHealth(clock), clock


def test_a_lease_expires_for_a_process_that_saw_the_store_healthy_throughout() -> None:
    health, clock = health_seen_healthy_since(1000.0)
    clock.now = 1100.0
    renewed = 1090.0
    assert not health.lease_is_free(ELSEWHERE, renewed + LEASE, LEASE, now=1094.9)
    assert health.lease_is_free(ELSEWHERE, renewed + LEASE, LEASE, now=1095.0)


def test_a_stall_shared_by_everyone_is_not_the_owners_death() -> None:
    health, clock = health_seen_healthy_since(1000.0)
    renewed = 1090.0  # then the store stalls for everyone from 1091 to 1111
    for second in range(1091, 1112, 2):  # the last failure ends at 1111
        clock.now = float(second)
        health.failed("a lock was held too long (lock_timeout)")
    clock.now = 1111.0
    expires = renewed + LEASE  # long past, but the owner could not write since
    assert not health.lease_is_free(ELSEWHERE, expires, LEASE, now=1111.0)
    assert not health.lease_is_free(ELSEWHERE, expires, LEASE, now=1115.9)
    # healthy for a whole lease timeout since then, and the owner did not renew: it is dead
    assert health.lease_is_free(ELSEWHERE, expires, LEASE, now=1116.0)


def test_a_lease_renewed_after_the_stall_counts_from_its_renewal() -> None:
    health, clock = health_seen_healthy_since(1000.0)
    clock.now = 1100.0
    health.failed("the database is unreachable")
    renewed = 1103.0
    assert not health.lease_is_free(ELSEWHERE, renewed + LEASE, LEASE, now=1107.9)
    assert health.lease_is_free(ELSEWHERE, renewed + LEASE, LEASE, now=1108.0)


def test_a_slow_answer_is_a_stall_that_retries_hid() -> None:
    health, clock = health_seen_healthy_since(1000.0)
    clock.now = 1100.0
    health.answered(began=1100.0 - SLOW * LEASE / 2, lease_timeout=LEASE)  # quick enough
    assert health.healthy_since == 1000.0
    health.answered(began=1100.0 - SLOW * LEASE - 0.1, lease_timeout=LEASE)
    assert health.healthy_since == 1100.0
    assert not health.lease_is_free(ELSEWHERE, 1096.0, LEASE, now=1104.9)


def test_a_process_counts_from_its_own_start() -> None:
    health, _ = health_seen_healthy_since(1000.0)
    expired_long_ago = 900.0
    assert not health.lease_is_free(ELSEWHERE, expired_long_ago, LEASE, now=1004.9)
    assert health.lease_is_free(ELSEWHERE, expired_long_ago, LEASE, now=1005.0)


def test_a_dead_owner_on_this_host_voids_its_lease_at_once_even_in_a_stall() -> None:
    health, clock = health_seen_healthy_since(1000.0)
    clock.now = 1010.0
    health.failed("a lock was held too long (lock_timeout)")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = LeaseOwner(host=this_owner().host, pid=int(gone.stdout), proc_start="1")
    assert health.lease_is_free(dead, 1100.0, LEASE, now=1010.0)  # not even expired
    alive = this_owner()
    assert os.getpid() == alive.pid
    assert not health.lease_is_free(alive, 1100.0, LEASE, now=1010.0)


def test_no_owner_or_no_expiry_binds_nobody() -> None:
    health, _ = health_seen_healthy_since(1000.0)
    assert health.lease_is_free(None, 1100.0, LEASE, now=1000.0)
    assert health.lease_is_free(ELSEWHERE, None, LEASE, now=1000.0)


def test_an_owner_waits_for_a_failing_store_as_long_as_its_patience_lasts() -> None:
    assert StoreHealth.owner_may_wait(4 * LEASE, LEASE)  # a stall of four leases: it waits
    assert StoreHealth.owner_may_wait(PATIENCE * LEASE - 0.1, LEASE)
    assert not StoreHealth.owner_may_wait(PATIENCE * LEASE, LEASE)


def test_a_takeover_names_the_fault_that_ended_the_run() -> None:
    health, clock = health_seen_healthy_since(1000.0)
    health.abandoned("e1", "execution e1: writing a batch: the store's disk is full")
    cause = health.cause_of_takeover("e1", LEASE)
    assert cause == (
        "its previous owner abandoned the run: the store was unavailable: "
        "execution e1: writing a batch: the store's disk is full"
    )
    assert health.cause_of_takeover("e1", LEASE) == "its previous owner stopped"  # said once
    clock.now = 1100.0
    health.failed("a lock was held too long (lock_timeout)")
    clock.now = 1100.0 + RECENT * LEASE
    assert "the store was unavailable here 15 s before: a lock was held too long" in (
        health.cause_of_takeover("e2", LEASE)
    )
    clock.now += 1
    assert health.cause_of_takeover("e2", LEASE) == "its previous owner stopped"
