"""One decorator for the store calls that ride out a database outage.

A store method marked `@retried(...)` is handed to its store's `_retry` policy: on
PostgreSQL a call cut off by a lost connection is tried again with backoff, and a write
whose COMMIT was cut off is read back (`recover`) rather than sent twice
(`dalsegno.store.outage`). SQLite has no such outage: its store runs the method as is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")


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
