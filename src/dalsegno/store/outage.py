"""Riding out a database outage: retry with backoff, and never apply one write twice.

A PostgreSQL restart (or a failover) cuts every connection: a statement fails with
"server closed the connection", and new connections are refused, or told "the database
system is starting up", until the server is back. A write cut off before its COMMIT was
sent did nothing and is simply tried again. A write cut off *during* its COMMIT may or may
not have committed: the transaction's id, read just before COMMIT, tells which once the
server answers again (`pg_xact_status`). A write known to have committed is not sent again;
its result is read back instead.

A stall is treated as an outage: a statement that waits for a lock longer than the
session's `lock_timeout`, or runs longer than its `statement_timeout`, is cancelled by the
server (`dalsegno.store.postgres`), and tried again like a lost connection; so is a
connection refused because the database has no slot left. A caller that gives up meets
`StoreUnavailableError`, never the driver's error: a request answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy import Engine, exc, text

from dalsegno.model.errors import StoreFailedError, StoreUnavailableError, StoreWriteUnknownError
from dalsegno.store.retry import BACKOFF, WINDOW, Backoff

log = logging.getLogger("dalsegno.store")
T = TypeVar("T")
__all__ = [
    "BACKOFF",
    "WINDOW",
    "Outcome",
    "committed",
    "is_disconnect",
    "passing_fault",
    "retrying",
]


def is_disconnect(error: BaseException) -> bool:
    """A lost or refused connection (worth a retry), not a refusal of the statement."""
    if isinstance(error, exc.DisconnectionError):
        return True
    if isinstance(error, exc.InvalidRequestError) and "connection is closed" in str(error):
        return True  # the pool found every connection it tried dead (a server going away)
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    return isinstance(error, psycopg.OperationalError | exc.OperationalError)


# What a passing fault means to an operator, by SQLSTATE, or by the server's words when
# it refused a connection (libpq reports no SQLSTATE then); any other lost or refused
# connection: the database is unreachable.
MEANINGS = {
    "55P03": "a lock was held too long (lock_timeout)",
    "57014": "a statement ran too long (statement_timeout)",
    "53300": "the database refuses new connections",
    "53400": "the database refuses new connections",
    "57P03": "the database is starting up or shutting down",
}
REFUSALS = {
    "too many connections": "53300",
    "remaining connection slots are reserved": "53300",
    "the database system is starting up": "57P03",
    "the database system is shutting down": "57P03",
}


def passing_fault(error: BaseException) -> StoreUnavailableError | None:
    """A fault of the database that a later try may not meet, as the error callers know
    (a 503 with Retry-After; one line in the CLI); None for any other error."""
    if isinstance(error, StoreUnavailableError):
        return None if isinstance(error, StoreFailedError) else error
    if not is_disconnect(error):
        return None
    cause = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    text = _first_line(cause)
    state = getattr(cause, "sqlstate", None) or next(
        (code for words, code in REFUSALS.items() if words in text), ""
    )
    meaning = MEANINGS.get(state, "the database is unreachable")
    return StoreUnavailableError(f"{meaning} ({text})")


class Outcome:
    """The transaction id of the write the current thread is committing, if one was read."""

    def __init__(self) -> None:
        self._local = threading.local()

    def begin(self) -> None:
        self._local.xid = None
        self._local.tracking = True

    def end(self) -> None:
        self._local.tracking = False

    @property
    def tracking(self) -> bool:
        return bool(getattr(self._local, "tracking", False))

    @property
    def xid(self) -> str | None:
        return getattr(self._local, "xid", None)

    def record(self, xid: str | None) -> None:
        self._local.xid = xid


def committed(engine: Engine, xid: str, deadline: float) -> bool | None:
    """Whether transaction `xid` committed: None when the server did not say by `deadline`."""
    delay = BACKOFF[0]
    while True:
        try:
            with engine.connect() as conn:
                status = conn.execute(
                    text("SELECT pg_xact_status(CAST(:xid AS xid8))"), {"xid": xid}
                ).scalar()
            if status == "committed":
                return True
            if status == "aborted" or status is None:
                return False
            # "in progress": the old session has not noticed it lost its client yet
        except Exception as error:  # only a lost connection is waited out
            if not is_disconnect(error):
                raise
        if time.time() + delay > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, BACKOFF[1])


def retrying(
    engine: Engine,
    outcome: Outcome,
    call: Callable[[], T],
    deadline: float,
    what: str | Callable[[], str],
    recover: Callable[[], T] | None = None,
    closed: Callable[[], bool] = lambda: False,
) -> T:
    """`call()`, tried again with backoff while the database is unreachable, up to `deadline`.

    With `recover`, `call` is a write whose transaction id is recorded before its COMMIT:
    when the connection was cut after that, `recover()` reads back what the write did if
    it committed, and the write is sent again only if it did not. Without `recover`, `call`
    must be safe to repeat (a read, or a write its guards make idempotent).
    `what` names the call in a log line or an error (a callable is asked only then).
    Raises `StoreUnavailableError` when the deadline passes: the write was not applied, or
    (the server silent about its COMMIT) may have been; either way a lease fences it.
    """
    name = what if callable(what) else lambda: what
    backoff = Backoff(name, deadline, closed)
    while True:
        if recover is not None:
            outcome.begin()
        try:
            return call()
        except Exception as error:
            fault = passing_fault(error)
            if fault is None:
                raise
            xid = outcome.xid if recover is not None else None
            if xid is not None and recover is not None:
                done = committed(engine, xid, deadline)
                if done:
                    log.warning("%s: the connection was lost at commit, which went through", name())
                    return recover()
                if done is None:
                    msg = f"{name()}: the database did not answer whether the write committed"
                    raise StoreWriteUnknownError(msg) from error
            backoff.wait_or_give_up(fault, error)
        finally:
            if recover is not None:
                outcome.end()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
