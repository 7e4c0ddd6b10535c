"""Sends the outbox's results to the manager until each one is answered for.

A result leaves the outbox on a 200 (recorded, or recorded already: a duplicate delivery
is harmless) or on a 404/409 refusal (the manager will never take it: the attempt is
unknown, or no longer this agent's), which is logged. Anything else (no answer, a 5xx,
another 4xx such as a revoked token) keeps it, and the sender tries again after an
exponential backoff with jitter, capped at `cap` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from dalsegno.agent.client import ManagerClient, Refused, Unreachable
from dalsegno.agent.outbox import Outbox, PendingResult

log = logging.getLogger("dalsegno.agent")

DROPPED = frozenset({404, 409})
# The manager cannot read this result (too large, malformed): replaced by a failure that
# says so, so the task fails visibly instead of waiting for ever.
UNREADABLE = frozenset({400, 413, 422})


class Backoff:
    """Exponential delays with full jitter: base, 2*base, 4*base... capped at `cap`."""

    def __init__(self, base: float = 0.2, cap: float = 10.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 30))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        self.failures = 0


_UNREADABLE_PREFIX = "the manager refused the agent's result: "


def unreadable(body: dict[str, Any], reason: str) -> dict[str, Any]:
    """A failure in place of a result the manager refused to read."""
    return {
        "agent": body.get("agent"),
        "outcome": "failed",
        "result": None,
        "error": f"{_UNREADABLE_PREFIX}{reason}"[:10_000],
        "recoverable": False,
        "retry_after": None,
        "logs": [],
    }


def _is_unreadable(body: dict[str, Any]) -> bool:
    return str(body.get("error") or "").startswith(_UNREADABLE_PREFIX)


class Sender:
    """A thread that drains the outbox; `wake()` when a result was put in."""

    def __init__(self, outbox: Outbox, client: ManagerClient, cap: float = 10.0) -> None:
        self.outbox = outbox
        self.client = client
        self.backoff = Backoff(cap=cap)
        self.first_pass = threading.Event()  # the results a restart found were tried once
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._later = threading.Event()
        self._wake = threading.Event()
        self._kick = threading.Event()  # cuts a backoff short: the manager answers again
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="dalsegno-agent-sender", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def retry_now(self) -> None:
        """The manager answers again (a heartbeat got through): send without waiting out
        the backoff."""
        self.backoff.reset()
        self._kick.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending after at most one more pass; what is unsent stays in the outbox."""
        self._stop.set()
        self._wake.set()
        self._kick.set()
        self._thread.join(timeout)

    def deliver(self, attempt_id: str, body: dict[str, Any]) -> None:
        """First send of a result just put in the outbox, from the thread that ran it (so
        sends of concurrent operations go out in parallel); a result not answered for is
        left to the sender thread."""
        with self._lock:
            self._in_flight.add(attempt_id)
        try:
            answered = self._send(PendingResult(0, attempt_id, body, 0))
        finally:
            with self._lock:
                self._in_flight.discard(attempt_id)
        if not answered:
            self._later.set()  # the sender tries again after a backoff, not at once
            self.wake()

    def send_pending(self) -> bool:
        """Send every kept result once; False when one was kept (to be sent again)."""
        cleared = True
        after = 0
        while True:
            batch = self.outbox.pending(after)
            if not batch:
                return cleared
            for pending in batch:
                after = pending.row
                with self._lock:
                    if pending.attempt_id in self._in_flight:
                        continue  # its first send is under way in another thread
                answered = self._send(pending)
                if answered is None:
                    return False  # the manager cannot be reached: back off
                cleared = cleared and answered

    def _send(self, pending: PendingResult) -> bool | None:
        """True: answered for (sent, or refused for good); False: kept; None: no answer."""
        try:
            self.client.result(pending.attempt_id, pending.body)
        except Unreachable as exc:
            if not self.backoff.failures:
                log.warning("manager unreachable, results kept: %s", exc)
            self.outbox.sent(pending.attempt_id)
            return None
        except Refused as exc:
            if exc.status in DROPPED:
                log.warning("result of %s refused for good: %s", pending.attempt_id, exc)
                self.outbox.remove(pending.attempt_id)
                return True
            if exc.status in UNREADABLE and not _is_unreadable(pending.body):
                log.error("result of %s unreadable to the manager: %s", pending.attempt_id, exc)
                self.outbox.replace(pending.attempt_id, unreadable(pending.body, exc.reason))
                return False
            log.error("result of %s refused, kept: %s", pending.attempt_id, exc)
            self.outbox.sent(pending.attempt_id)
            return False  # one result the manager refuses does not hold up the others
        self.outbox.remove(pending.attempt_id)
        return True

    def _loop(self) -> None:
        while True:
            if self._later.is_set():
                self._later.clear()
                self._kick.wait(self.backoff.next_delay())
                self._kick.clear()
            try:
                delivered = self.send_pending()
            except Exception:  # a bug or a broken outbox file must not end the sending
                log.exception("sending the outbox failed; trying again")
                delivered = False
            self.first_pass.set()
            if self._stop.is_set():
                return
            if delivered:
                self.backoff.reset()
                self._wake.wait()
                self._wake.clear()
            else:
                self._kick.wait(self.backoff.next_delay())
                self._kick.clear()
