"""What one process has seen of its store, and what that allows it to do with leases.

docs/design.md section 3, "Faults of the store are not faults of the work": a stall that
every process shares (the database unreachable, a table or the file locked for all) is nobody's
death. A lease that ran out during it was not renewed because nobody could write, not
because its owner died. So:

- **a takeover** counts a lease as expired only once this process has itself seen the
  store healthy for a whole lease timeout since the lease's last renewal could have been
  written: `now - max(renewed, healthy_since) >= lease_timeout`, where `renewed` is the
  lease's expiry less the lease timeout, and `healthy_since` the end of the last call of
  this process that failed on a passing fault of the store (`StoreUnavailableError`) or
  took longer than `SLOW` of a lease timeout (a stall the retries hid). A process counts
  from its own start: it has seen nothing before. An owner on this host whose process is
  gone voids its lease at once, whatever the store did (`lease.owner_is_dead`).
- **an owner** whose write fails on a passing fault keeps trying while the store fails
  for it: nobody can take the lease over meanwhile unless the fault is the owner's alone,
  and then the lease token fences whatever it writes after. Its patience lasts
  `PATIENCE` lease timeouts from its last successful renewal; past it, it abandons the run
  to a takeover (nothing is failed), and the takeover records the fault as the cause.

One `StoreHealth` per store object, shared by the claim loop, the heartbeats and the
runs of the process (`of`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from dalsegno.engine.lease import owner_is_dead
from dalsegno.model.records import LeaseOwner

SLOW = 0.2  # of a lease timeout: a store call that took longer was a stall
PATIENCE = 20  # lease timeouts an owner waits for a failing store before it abandons
RECENT = 3  # lease timeouts a fault seen here is named by a takeover

Clock = Callable[[], float]


class StoreHealth:
    """When the store last became healthy for this process, and the last fault it saw."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.healthy_since = clock()
        self.last_fault: tuple[float, str] | None = None  # (when, what)
        self._abandoned: dict[str, str] = {}  # execution id -> the fault that ended its run

    # what the process saw ------------------------------------------------------------

    def failed(self, fault: str) -> None:
        """A store call failed on a passing fault: the store is not healthy (yet)."""
        now = self._clock()
        with self._lock:
            self.healthy_since = max(self.healthy_since, now)
            self.last_fault = (now, fault)

    def answered(self, began: float, lease_timeout: float) -> None:
        """A store call that began at `began` (this clock) succeeded; a slow one was a stall."""
        now = self._clock()
        if now - began > SLOW * lease_timeout:
            with self._lock:
                self.healthy_since = max(self.healthy_since, now)

    # takeovers -----------------------------------------------------------------------

    def lease_is_free(
        self,
        owner: LeaseOwner | None,
        expires_at: float | None,
        lease_timeout: float,
        now: float | None = None,
    ) -> bool:
        """Whether this process may take the lease over now (see the module's rule)."""
        if owner is None or expires_at is None:
            return True
        if owner_is_dead(owner):
            return True
        now = self._clock() if now is None else now
        if now < expires_at:
            return False
        renewed = expires_at - lease_timeout
        return now - max(renewed, self.healthy_since) >= lease_timeout

    # owners --------------------------------------------------------------------------

    @staticmethod
    def owner_may_wait(since_renewal: float, lease_timeout: float) -> bool:
        """Whether an owner whose write just failed on a passing fault tries again, its
        last successful renewal `since_renewal` seconds ago."""
        return since_renewal < PATIENCE * lease_timeout

    def abandoned(self, execution_id: str, fault: str) -> None:
        """A run of this process was abandoned because of `fault` of the store."""
        with self._lock:
            self._abandoned[execution_id] = fault

    def cause_of_takeover(self, execution_id: str, lease_timeout: float) -> str:
        """What a takeover of `execution_id` by this process says of the previous owner."""
        with self._lock:
            fault = self._abandoned.pop(execution_id, None)
            seen = self.last_fault
        if fault is not None:
            return f"its previous owner abandoned the run: the store was unavailable: {fault}"
        if seen is not None and self._clock() - seen[0] <= RECENT * lease_timeout:
            return (
                "its previous owner stopped renewing its lease; the store was unavailable "
                f"here {self._clock() - seen[0]:.0f} s before: {seen[1]}"
            )
        return "its previous owner stopped"


_health: weakref.WeakKeyDictionary[object, StoreHealth] = weakref.WeakKeyDictionary()
_health_lock = threading.Lock()


def of(store: object) -> StoreHealth:
    """The health of `store` as this process saw it (one for each store object)."""
    with _health_lock:
        health = _health.get(store)
        if health is None:
            health = _health[store] = StoreHealth()
        return health
