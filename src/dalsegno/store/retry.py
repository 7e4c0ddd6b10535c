"""One decorator for the store calls that ride out a database outage.

A store method marked `@retried(...)` is handed to its store's `_retry` policy: on
PostgreSQL a call cut off by a lost connection, or by a lock or statement timeout, is tried
again with backoff, and a write whose COMMIT was cut off is read back (`recover`) rather
than sent twice (`dalsegno.store.outage`). On SQLite a call refused for a passing fault (a
full or read-only disk, a lock: `dalsegno.store.faults`) is tried again the same way: a
write SQLite refused did nothing. A store that failed for good is never retried.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from dalsegno.model.errors import StoreFailedError, StoreUnavailableError

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("dalsegno.store")

BACKOFF = (0.05, 1.0)  # first and longest wait between two tries
WINDOW = 15.0  # seconds a call is retried when its caller gives no deadline

# A request's budget: the wall-clock time after which its store calls stop retrying, so
# that a stalled store answers a request (503) instead of holding it (`budget`).
_budget: ContextVar[float | None] = ContextVar("dalsegno_store_budget", default=None)


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Store calls made in this context (and in threads it starts work in) retry for at
    most `seconds` from now, whatever deadline they were given."""
    token = _budget.set(time.time() + seconds)
    try:
        yield
    finally:
        _budget.reset(token)


def budget_left() -> float | None:
    """Seconds left of the current request's budget (None outside a request)."""
    limit = _budget.get()
    return None if limit is None else max(0.0, limit - time.time())


def within_budget(deadline: float | None) -> float:
    """When a retried call gives up: its `deadline` (default: `WINDOW` from now), or the
    end of the current request's budget if that comes first."""
    chosen = time.time() + WINDOW if deadline is None else deadline
    limit = _budget.get()
    return chosen if limit is None else min(chosen, limit)


class Retrying(Protocol):
    """A store with a retry policy (`SQLBase` runs the call once; PostgreSQL retries)."""

    retries_outages: bool

    def _retry(
        self,
        call: Callable[[], T],
        what: Callable[[], str],
        recover: Callable[[], T] | None = None,
        deadline: float | None = None,
    ) -> T: ...


S = TypeVar("S")


def retried(
    what: str,
    *,
    recover: Callable[..., Any] | None = None,
    deadline: Callable[..., float] | None = None,
) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Run the method under its store's retry policy.

    `what` names the call in a log line or an error, formatted with the method's
    arguments (`"execution {execution_id}: reading it"`). `recover(store, *args)` reads
    back what a write did when its COMMIT went through unanswered; without it the method
    must be safe to repeat. `deadline(*args)` is when to give up (default: the outage
    window).
    """

    def decorate(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        signature = inspect.signature(method)

        def call(store: S, *args: P.args, **kwargs: P.kwargs) -> T:
            policy = cast(Retrying, store)
            if not policy.retries_outages:
                return method(store, *args, **kwargs)

            def describe() -> str:  # formatted only when it is told
                bound = signature.bind(store, *args, **kwargs)
                return what.format(**bound.arguments)

            def attempt() -> T:
                return method(store, *args, **kwargs)

            def read_back() -> T:
                assert recover is not None
                return cast(T, recover(store, *args, **kwargs))

            return policy._retry(
                attempt,
                describe,
                None if recover is None else read_back,
                None if deadline is None else deadline(*args, **kwargs),
            )

        return cast(Callable[Concatenate[S, P], T], functools.wraps(method)(call))

    return decorate


class Backoff:
    """The waits between the tries of one call: `BACKOFF[0]` doubling to `BACKOFF[1]`,
    until `deadline` (or until `closed()`)."""

    def __init__(
        self, what: Callable[[], str], deadline: float, closed: Callable[[], bool]
    ) -> None:
        self._what, self._deadline, self._closed = what, deadline, closed
        self._delay = BACKOFF[0]
        self._tries = 0

    def wait_or_give_up(self, fault: StoreUnavailableError, error: BaseException) -> None:
        """Sleep before the next try (the first fault is logged), or raise `fault`, named
        by the call, when the next try would come after the deadline."""
        self._tries += 1
        if time.time() + self._delay > self._deadline or self._closed():
            msg = f"{self._what()}: {fault}"
            raise StoreUnavailableError(msg) from error
        if self._tries == 1:
            log.warning("%s: %s; retrying", self._what(), fault)
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, BACKOFF[1])


def retry_passing(
    call: Callable[[], T],
    what: Callable[[], str],
    deadline: float,
    closed: Callable[[], bool] = lambda: False,
) -> T:
    """`call()`, tried again with backoff while it fails with a passing store fault, up to
    `deadline`; then its `StoreUnavailableError`, named by `what()`."""
    backoff = Backoff(what, deadline, closed)
    while True:
        try:
            return call()
        except StoreFailedError:
            raise
        except StoreUnavailableError as error:
            backoff.wait_or_give_up(error, error)
