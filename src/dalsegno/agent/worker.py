"""The agent's loop: exchange (deliver results, claim and start tasks), run, heartbeat.

Threads: the claim loop (each call delivers what the outbox holds and claims as many
tasks as there are free slots, long-polling when there are none), one heartbeat, one
sender (it delivers what finishes while the claim loop waits in a long-poll), one
supervisor per running attempt (it waits for the operation and hands its result over),
and the worker pool of `concurrency` threads that run the operations themselves.

A claimed task is `started` on the manager before the claim answers: the agent runs it
at once. Results finished together are committed to the outbox in one transaction and go
to the manager in one call with the next claim.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dalsegno.agent.attempts import Assignment, AttemptRun
from dalsegno.agent.client import CLAIM_WAIT, ManagerClient, Refused, Unreachable
from dalsegno.agent.delivery import UNREADABLE, Backoff, Deliveries, Sender, wire
from dalsegno.agent.outbox import Outbox, outbox_path
from dalsegno.engine.pool import WorkerPool

log = logging.getLogger("dalsegno.agent")

# Refusals of a claim that no retry can mend: a wrong token, a token of another queue,
# a malformed request (a queue name the manager does not accept).
FATAL_CLAIM = frozenset({400, 401, 403, 422})
DEFAULT_HEARTBEAT = 2.0  # seconds between heartbeats, unless the manager asks otherwise
# Results that finish while the claim loop waits in a long-poll are sent by the sender
# after this long: a claim that answers sooner carries them itself, in the same call.
PARKED_GRACE = 0.02
# Seconds a call waits, while attempts still run, for half the slots to be free (below).
GATHER = 0.005
# A long-poll waits a random 80-100% of `claim_wait`: a fleet of agents started together
# spreads its renewals over the next minutes instead of sending them all at once.
WAIT_SPREAD = 0.2


def default_name() -> str:
    """`HOST:PID`: unique among the live agents of a host."""
    return f"{socket.gethostname()}:{os.getpid()}"


_CLAIM_PREFIX = uuid.uuid4().hex[:16]  # this process's: claim ids never repeat
_claims = itertools.count()


def new_claim_id() -> str:
    """A claim id no other claim uses (random once per process, then counted: a fresh
    random id per claim costs a system call that a loaded host makes slow)."""
    return f"{_CLAIM_PREFIX}_{next(_claims):x}"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """How an agent serves its queue."""

    manager_url: str
    token: str
    queue: str
    home: Path
    name: str = ""
    concurrency: int = 1
    grace: float = 10.0  # on stop: seconds running operations get to end
    heartbeat_interval: float | None = None  # None: 2 s, or what the manager asks for
    claim_wait: float = CLAIM_WAIT
    backoff_cap: float = 10.0
    cacert: str | None = None  # the CA certificate(s) of an https:// manager


class AgentFailed(Exception):
    """The manager refused this agent for good (a wrong token, a token of another queue)."""


class Agent:
    """One agent process serving one queue; `run()` returns after `stop()`."""

    def __init__(self, config: AgentConfig, client: ManagerClient | None = None) -> None:
        if config.concurrency < 1:
            msg = f"concurrency must be at least 1, not {config.concurrency}"
            raise ValueError(msg)
        self.config = config
        self.name = config.name or default_name()
        self.client = client or ManagerClient(
            config.manager_url, config.token, cacert=config.cacert
        )
        self.outbox = Outbox(outbox_path(config.home, config.queue))
        self.deliveries = Deliveries(self.outbox)
        self.sender = Sender(
            self.deliveries, self._deliver, self._sender_may_send, config.backoff_cap
        )
        self.pool = WorkerPool(config.concurrency, name="dalsegno-agent-worker")
        self._held: dict[str, AttemptRun] = {}  # running, or its result not kept yet
        self._finished: list[tuple[str, dict[str, Any]]] = []  # results to keep
        self._unsent = len(self.outbox) > 0  # kept results no call carried yet
        self._parked_since: float | None = None  # the claim loop waits in a long-poll
        # since when its long-polls, renewed as each one ends with nothing, have waited
        # without a break (None: it took tasks, or a call failed, since)
        self._waiting_since: float | None = None
        self._slots = threading.Condition()
        self._keeping = threading.Lock()
        self._stopping = threading.Event()
        self._done = threading.Event()  # shut down: the heartbeat ends
        self._kick = threading.Event()  # cuts the claim's backoff short
        self._interval = config.heartbeat_interval or DEFAULT_HEARTBEAT
        # the manager said a claim waiting in its long-poll counts as this agent's beat
        self._waiting_beats = False
        self.failure: str | None = None

    # the whole process -------------------------------------------------------------

    def run(self) -> None:
        """Deliver what a previous run left, then serve the queue until `stop()`."""
        self.sender.start()
        heartbeat = threading.Thread(
            target=self._beat, name="dalsegno-agent-heartbeat", daemon=True
        )
        heartbeat.start()
        claimer = threading.Thread(
            target=self._claim_loop, name="dalsegno-agent-claim", daemon=True
        )
        claimer.start()
        try:
            self._stopping.wait()
        finally:
            self._shut_down()
        if self.failure is not None:
            raise AgentFailed(self.failure)

    def stop(self) -> None:
        """Stop claiming; `run()` lets running operations end within the grace and returns."""
        self._stopping.set()
        self._kick.set()
        self.sender.wake()
        with self._slots:
            self._slots.notify_all()

    def _shut_down(self) -> None:
        deadline = time.monotonic() + self.config.grace
        with self._slots:
            while self._running() and time.monotonic() < deadline:
                self._slots.wait(max(0.0, min(0.2, deadline - time.monotonic())))
            left = [self._held[attempt_id] for attempt_id in self._running()]
        for attempt in left:
            log.warning("stopping %s: still running after the grace", attempt.assignment.attempt_id)
            attempt.stop("agent stopped")
            self._forget(attempt.assignment.attempt_id)
        self._keep()
        self._done.set()
        self.sender.stop()
        self.pool.shutdown()
        left_over = len(self.outbox)
        if left_over:
            log.warning("%d result(s) kept in %s for the next start", left_over, self.outbox.path)
        self.outbox.close()
        self.client.close()

    def _running(self) -> list[str]:
        """Attempts still running (caller holds `_slots`)."""
        finished = {attempt_id for attempt_id, _ in self._finished}
        return [attempt_id for attempt_id in self._held if attempt_id not in finished]

    # results -----------------------------------------------------------------------

    def _keep(self) -> None:
        """Commit the results that finished to the outbox (one transaction), and free
        their slots: from here on a crash loses none of them."""
        with self._keeping:
            with self._slots:
                finished, self._finished = self._finished, []
            if not finished:
                return
            try:
                self.outbox.put_many(finished)
            except BaseException:
                with self._slots:
                    self._finished[:0] = finished  # kept in memory: tried again next time
                raise
            with self._slots:
                for attempt_id, _ in finished:
                    self._held.pop(attempt_id, None)
                self._unsent = True
                self._slots.notify_all()

    def _finish(self, attempt_id: str, body: dict[str, Any]) -> None:
        with self._slots:
            self._finished.append((attempt_id, body))
            self._slots.notify_all()
        self.sender.wake()

    def _deliver(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The sender's call: results only, no claim."""
        answers, _ = self.client.exchange(
            self.config.queue, self.name, results, 0, 0, new_claim_id()
        )
        return answers

    def _sender_may_send(self) -> float | None:
        with self._slots:
            parked = self._parked_since
        if not self._stopping.is_set():
            if parked is None:
                return None  # the claim loop is about to call: it carries them
            waited = time.monotonic() - parked
            if waited < PARKED_GRACE:
                return PARKED_GRACE - waited
        self._keep()
        return 0.0

    # claiming ----------------------------------------------------------------------

    def _wait_for_work(self) -> int:
        """Until a slot is free or results wait to be delivered; the free slots (0 when
        stopping, or when only results are to be delivered).

        While other attempts still run, a call waits until half the slots are free, at
        most `GATHER` seconds from the first one: one call then carries the results of
        attempts that end close together and claims for their slots together (short
        operations would otherwise make a call for each one or two)."""
        gathering: float | None = None
        with self._slots:
            while not self._stopping.is_set():
                done = len(self._finished)
                if len(self._held) - done >= self.config.concurrency and not self._unsent:
                    self._slots.wait()  # every slot busy, nothing to deliver
                    continue
                running = len(self._held) - done
                free = self.config.concurrency - running
                if not running or 2 * free >= self.config.concurrency:
                    break
                now = time.monotonic()
                gathering = now if gathering is None else gathering
                if now - gathering >= GATHER:
                    break
                self._slots.wait(GATHER - (now - gathering))
        self._keep()
        with self._slots:
            if self._stopping.is_set():
                return 0
            return max(0, self.config.concurrency - len(self._held))

    def _claim_loop(self) -> None:
        backoff = Backoff(cap=self.config.backoff_cap)
        claim = (new_claim_id(), False)
        while not self._stopping.is_set():
            try:
                claim = self._exchange_once(backoff, *claim)
            except Exception:
                if self._stopping.is_set():
                    return  # the client was closed under a long-poll left behind
                log.exception("claiming failed; trying again")
                self._kick.wait(backoff.next_delay())
                self._kick.clear()

    def _exchange_once(self, backoff: Backoff, claim_id: str, repeat: bool) -> tuple[str, bool]:
        """One exchange; returns the claim id of the next one and whether it repeats this
        one (when this one was not answered: what it may have claimed comes back)."""
        free = self._wait_for_work()
        if self._stopping.is_set():
            return claim_id, repeat
        taken = self.deliveries.take()
        with self._slots:
            self._unsent = len(taken) >= 100  # a full batch: more may be kept
        if not free and not taken:
            return claim_id, repeat
        spread = 1 - WAIT_SPREAD * random.random()  # noqa: S311 (a spread, not a secret)
        wait = self.config.claim_wait * spread if free else 0.0
        with self._slots:
            now = time.monotonic()
            self._parked_since = now if wait > 0 else None
            if wait <= 0:
                self._waiting_since = None
            elif self._waiting_since is None:
                self._waiting_since = now
            waiting = wait > 0 and bool(self._finished)
        if waiting:  # finished as this call was made: the sender delivers them
            self.sender.wake()
        try:
            answers, found = self.client.exchange(
                self.config.queue,
                self.name,
                [wire(p) for p in taken],
                free,
                wait,
                claim_id,
                repeat,
            )
        except Unreachable as exc:
            self._stop_waiting()
            self.deliveries.give_back(taken)
            self._set_unsent(taken)
            if not backoff.failures:
                log.warning("manager unreachable, claiming again soon: %s", exc)
            self._kick.wait(backoff.next_delay())
            self._kick.clear()
            return claim_id, True
        except Refused as exc:
            self._stop_waiting()
            self.deliveries.give_back(taken)
            self._set_unsent(taken)
            self._refused(exc, taken, backoff)
            return new_claim_id(), False
        finally:
            with self._slots:
                self._parked_since = None
        backoff.reset()
        if found:
            self._stop_waiting()
        for document in found:  # started on the manager: run them before the bookkeeping
            self._take(document)
        # The acknowledged results leave the outbox after (a crash in between sends them
        # once more, and the manager answers `duplicate`).
        self.deliveries.settle(taken, answers)
        return new_claim_id(), False

    def _stop_waiting(self) -> None:
        with self._slots:
            self._waiting_since = None

    def _refused(self, exc: Refused, taken: list[Any], backoff: Backoff) -> None:
        if taken and exc.status in UNREADABLE:
            self.sender.send_each(taken)  # one by one: which result can it not read?
        elif exc.status in FATAL_CLAIM:
            self.failure = f"the manager refused this agent: {exc.reason}"
            log.error("%s", self.failure)
            self.stop()
        else:
            log.warning("claim refused: %s", exc)
            self._kick.wait(backoff.next_delay())
            self._kick.clear()

    def _set_unsent(self, taken: list[Any]) -> None:
        if taken:
            with self._slots:
                self._unsent = True

    def _take(self, document: dict[str, Any]) -> None:
        try:
            assignment = Assignment.parse(document)
        except ValueError as exc:
            log.error("ignoring a malformed assignment: %s", exc)
            attempt_id = document.get("attempt_id")
            if isinstance(attempt_id, str) and attempt_id:
                self._finish(attempt_id, _failure(self.name, f"malformed assignment: {exc}"))
            return
        if self._stopping.is_set():
            # Started on the manager as the agent stopped: never run, so it goes back to
            # the queue at once (not after this agent's heartbeats stop).
            log.warning("stopping: releasing %s unstarted", assignment.attempt_id)
            self._finish(assignment.attempt_id, _released(self.name))
            return
        if assignment.timeout is None:  # its worker hands the outcome over itself
            attempt = AttemptRun(assignment, self._settled)
            with self._slots:
                self._held[assignment.attempt_id] = attempt
            try:
                attempt.start(self.pool)
            except Exception:
                log.exception("attempt %s: the agent failed to run it", assignment.attempt_id)
                self._forget(assignment.attempt_id)
            return
        attempt = AttemptRun(assignment)
        with self._slots:
            self._held[assignment.attempt_id] = attempt
        threading.Thread(
            target=self._supervise,
            args=(attempt,),
            name=f"dalsegno-agent-{assignment.task_key}",
            daemon=True,
        ).start()

    # one attempt -------------------------------------------------------------------

    def _settled(self, attempt: AttemptRun) -> None:
        """An attempt without a timeout ended (in the thread that ran it)."""
        completion = attempt.completion()
        if completion is None:
            self._forget(attempt.assignment.attempt_id)
            return
        self._finish(attempt.assignment.attempt_id, attempt.result_body(self.name, completion))

    def _forget(self, attempt_id: str) -> None:
        """An attempt that reports nothing: its slot is free."""
        with self._slots:
            self._held.pop(attempt_id, None)
            self._slots.notify_all()

    def _supervise(self, attempt: AttemptRun) -> None:
        task = attempt.assignment
        reported = False
        try:
            attempt.start(self.pool)
            completion = attempt.wait(task.timeout)
            if completion is None and attempt.stopped is None:
                completion = attempt.timed_out()
            if completion is None:
                log.info(
                    "attempt %s stopped (%s): nothing reported", task.attempt_id, attempt.stopped
                )
                return
            self._finish(task.attempt_id, attempt.result_body(self.name, completion))
            reported = True
        except Exception:
            log.exception("attempt %s: the agent failed to run it", task.attempt_id)
        finally:
            if not reported:
                self._forget(task.attempt_id)

    # heartbeat ---------------------------------------------------------------------

    def _beat(self) -> None:
        reachable = True
        while True:
            with self._slots:
                held = list(self._held)
            # An attempt stays this agent's until the manager has its result: one whose
            # result waits in the outbox is listed too, or the manager would count it lost.
            try:
                waiting = self.outbox.attempts_of(self.name)
            except sqlite3.Error:
                log.exception("cannot read the outbox")
                waiting = []
            held += [found for found in waiting if found not in held]
            if not held and self._claim_waits():
                if self._done.wait(self._interval):
                    return
                continue
            body = {
                "queue": self.config.queue,
                "agent": self.name,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.config.concurrency,
                "attempts": held,
            }
            try:
                answer = self.client.heartbeat(body)
            except (Unreachable, Refused) as exc:
                if reachable:
                    log.warning("heartbeat not delivered: %s", exc)
                reachable = False
            except Exception:
                if self._done.is_set():
                    return  # the client was closed under it as the agent stopped
                log.exception("heartbeat failed")
            else:
                if not reachable:
                    log.info("the manager answers again")
                    self.sender.retry_now()
                    self._kick.set()
                reachable = True
                self._obey(answer)
            if self._done.wait(self._interval):
                return

    def _claim_waits(self) -> bool:
        """Whether a beat would say nothing the manager does not know: this agent holds
        nothing and its claims have waited in long-polls for a whole interval on a manager
        that counts a waiting claim as the beat (it writes the beats of the agents whose
        claims wait, every half of this interval). A long-poll that ends with nothing and
        is renewed at once does not break the wait: an idle agent sends no beat with each
        renewal. A beat goes out again as soon as the agent holds an attempt, took tasks,
        or a call failed (the manager may not have seen it since)."""
        if not self._waiting_beats:
            return False
        with self._slots:
            since = self._waiting_since
        return since is not None and time.monotonic() - since >= self._interval

    def _obey(self, answer: dict[str, Any]) -> None:
        self._waiting_beats = answer.get("waiting_beats") is True
        interval = answer.get("interval")
        if (
            self.config.heartbeat_interval is None  # an interval given to the agent wins
            and isinstance(interval, int | float)
            and not isinstance(interval, bool)
            and interval > 0
        ):
            self._interval = min(float(interval), 60.0)
        for key, why in (("kill", "kill"), ("unknown", "unknown")):
            ids = answer.get(key)
            if not isinstance(ids, list):
                continue
            for attempt_id in ids:  # an id only in the outbox is the sender's business
                with self._slots:
                    attempt = self._held.get(str(attempt_id))
                if attempt is not None and not attempt.finished:
                    log.warning("attempt %s: stopped, the manager says %s", attempt_id, why)
                    attempt.stop(why)
                    self._forget(str(attempt_id))


def _released(agent: str) -> dict[str, Any]:
    return {
        "agent": agent,
        "outcome": "released",
        "result": None,
        "error": None,
        "recoverable": True,
        "retry_after": None,
        "logs": [],
    }


def _failure(agent: str, error: str) -> dict[str, Any]:
    return {
        "agent": agent,
        "outcome": "failed",
        "result": None,
        "error": error[:10_000],
        "recoverable": False,
        "retry_after": None,
        "logs": [],
    }
