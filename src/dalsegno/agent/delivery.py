"""Delivering the outbox's results to the manager, in batches, until each is answered for.

Results go in exchanges (`POST /agents/exchange`): the agent's claim loop takes what the
outbox holds with each claim, and the `Sender` thread sends, with no claim, what finishes
while that loop waits in a long-poll. Each result of a batch is answered: `accepted` or
`duplicate` (recorded: a second delivery is harmless) and `conflict` or `unknown` (the
manager will never take it: the attempt is no longer this agent's, or unknown) all
remove it from the outbox. No answer, a 5xx or another refusal (a revoked token) keeps
it, and it is sent again after an exponential backoff with jitter.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from dalsegno.agent.client import Refused, Unreachable
from dalsegno.agent.outbox import Outbox, PendingResult

log = logging.getLogger("dalsegno.agent")

RECORDED = frozenset({"accepted", "duplicate"})
DROPPED = frozenset({"conflict", "unknown"})
# The manager cannot read this result (too large, malformed): replaced by a failure that
# says so, so the task fails visibly instead of waiting for ever.
UNREADABLE = frozenset({400, 413, 422})
BATCH = 100  # results in one call at most
BATCH_CHARS = 4_000_000  # and about this much JSON


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
        "attempt_id": body.get("attempt_id"),
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


def wire(pending: PendingResult) -> dict[str, Any]:
    """A kept result as the exchange carries it, with the name of the agent that ran it
    (a predecessor's, for a result an agent restarted under another name delivers)."""
    return {**pending.body, "attempt_id": pending.attempt_id}


class Deliveries:
    """The outbox's results on their way: which are in flight (carried by a call that has
    not answered), and what an answer does to them."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    def take(self) -> list[PendingResult]:
        """Kept results no call carries yet, oldest first, one batch at most; they are in
        flight until `settle` or `give_back`."""
        taken: list[PendingResult] = []
        size = after = 0
        with self._lock:
            while len(taken) < BATCH:
                page = self.outbox.pending(after, BATCH)
                if not page:
                    break
                after = page[-1].row
                for pending in page:
                    if pending.attempt_id in self._in_flight:
                        continue
                    size += len(str(pending.body))
                    if len(taken) >= BATCH or (taken and size > BATCH_CHARS):
                        break
                    taken.append(pending)
                else:
                    continue
                break
            self._in_flight.update(pending.attempt_id for pending in taken)
        return taken

    def take_count(self) -> int:
        """How many kept results no call carries now."""
        with self._lock:
            in_flight = set(self._in_flight)
        return sum(
            1
            for pending in self.outbox.pending(0, BATCH + len(in_flight))
            if pending.attempt_id not in in_flight
        )

    def give_back(self, taken: list[PendingResult]) -> None:
        """No answer came: the results stay kept, and the next call carries them again."""
        self.outbox.sent([pending.attempt_id for pending in taken])
        self._release(taken)

    def settle(self, taken: list[PendingResult], answers: list[dict[str, Any]]) -> None:
        """Forget the results the manager answered for; keep the others."""
        statuses = {str(found.get("attempt_id")): found.get("status") for found in answers}
        done: list[str] = []
        for pending in taken:
            status = statuses.get(pending.attempt_id)
            if status in DROPPED:
                log.warning("result of %s refused for good: %s", pending.attempt_id, status)
            if status in RECORDED or status in DROPPED:
                done.append(pending.attempt_id)
        self.outbox.remove(done)
        kept = [pending for pending in taken if pending.attempt_id not in set(done)]
        if kept:
            log.error("results kept, the manager did not answer for them: %d", len(kept))
            self.outbox.sent([pending.attempt_id for pending in kept])
        self._release(taken)

    def replace_unreadable(self, pending: PendingResult, reason: str) -> bool:
        """Put a failure saying so in place of a result the manager cannot read; False when
        it was such a failure already (then it is kept as it is)."""
        if _is_unreadable(pending.body):
            return False
        log.error("result of %s unreadable to the manager: %s", pending.attempt_id, reason)
        self.outbox.replace(pending.attempt_id, unreadable(pending.body, reason))
        return True

    def _release(self, taken: list[PendingResult]) -> None:
        with self._lock:
            for pending in taken:
                self._in_flight.discard(pending.attempt_id)


Send = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class Sender:
    """A thread that sends kept results with no claim, when `wake()`d and `may_send()`
    says so: None while the claim loop will carry them with its next claim, else the
    seconds to wait first (0: now). The claim loop waiting in a long-poll cannot carry
    what finishes meanwhile: that is what this thread is for."""

    def __init__(
        self,
        deliveries: Deliveries,
        send: Send,
        may_send: Callable[[], float | None],
        cap: float = 10.0,
    ) -> None:
        self.deliveries = deliveries
        self.backoff = Backoff(cap=cap)
        self._send_batch = send
        self._may_send = may_send
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
        """Stop the thread, then send what is kept until it is all answered for or a
        call fails; what is unsent stays in the outbox for the next start."""
        self._stop.set()
        self._wake.set()
        self._kick.set()
        self._thread.join(timeout)
        while self.send_once() is True and self.deliveries.take_count():
            pass

    def send_once(self) -> bool | None:
        """Send one batch: True when everything sent was answered for (or nothing was
        kept), False when some is kept, None when the manager could not be reached."""
        taken = self.deliveries.take()
        if not taken:
            return True
        try:
            answers = self._send_batch([wire(pending) for pending in taken])
        except Unreachable as exc:
            if not self.backoff.failures:
                log.warning("manager unreachable, results kept: %s", exc)
            self.deliveries.give_back(taken)
            return None
        except Refused as exc:
            self.deliveries.give_back(taken)
            if exc.status in UNREADABLE:
                return self.send_each(taken)
            log.error("results refused, kept: %s", exc)
            return False
        self.deliveries.settle(taken, answers)
        return True

    def send_each(self, taken: list[PendingResult]) -> bool:
        """One call per result, to find those the manager cannot read: each is replaced by
        a failure saying so, sent at the next pass."""
        answered = True
        for pending in taken:
            try:
                answers = self._send_batch([wire(pending)])
            except Unreachable:
                return False
            except Refused as exc:
                if exc.status in UNREADABLE and self.deliveries.replace_unreadable(
                    pending, exc.reason
                ):
                    continue
                log.error("result of %s refused, kept: %s", pending.attempt_id, exc)
                answered = False
                continue
            self.deliveries.settle([pending], answers)
        return answered

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # a bug or a broken outbox file must not end the sending
                log.exception("sending results failed; trying again")
                self._stop.wait(self.backoff.next_delay())

    def _drain(self) -> None:
        while not self._stop.is_set():
            delay = self._may_send()
            if delay is None:
                return  # the claim loop carries them
            if delay > 0:
                self._stop.wait(delay)
                continue
            sent = self.send_once()
            if sent is True:
                self.backoff.reset()
                if not self.deliveries.take_count():
                    return
                continue
            self._kick.wait(self.backoff.next_delay())
            self._kick.clear()
