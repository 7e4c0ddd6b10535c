"""The agent's loop: claim by long-poll, run, heartbeat, report through the outbox.

Threads: the caller's (claims), one heartbeat, one sender (the outbox), one supervisor
per held attempt (it reports `started`, waits for the operation, writes its result), and
the worker pool of `concurrency` threads that run the operations themselves.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dalsegno.agent.attempts import Assignment, AttemptRun
from dalsegno.agent.client import CLAIM_WAIT, ManagerClient, Refused, Unreachable
from dalsegno.agent.delivery import Backoff, Sender
from dalsegno.agent.outbox import Outbox, outbox_path
from dalsegno.engine.pool import WorkerPool

log = logging.getLogger("dalsegno.agent")

# Refusals of a claim that no retry can mend: a wrong token, a token of another queue,
# a malformed request (a queue name the manager does not accept).
FATAL_CLAIM = frozenset({400, 401, 403, 422})
DEFAULT_HEARTBEAT = 2.0  # seconds between heartbeats, unless the manager asks otherwise


def default_name() -> str:
    """`HOST:PID`: unique among the live agents of a host."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
        self.client = client or ManagerClient(config.manager_url, config.token)
        self.outbox = Outbox(outbox_path(config.home, config.queue))
        self.sender = Sender(self.outbox, self.client, config.backoff_cap)
        self.pool = WorkerPool(config.concurrency, name="dalsegno-agent-worker")
        self._held: dict[str, AttemptRun] = {}  # claimed or running, by attempt id
        self._slots = threading.Condition()
        self._stopping = threading.Event()
        self._done = threading.Event()  # shut down: the heartbeat ends
        self._kick = threading.Event()  # cuts the claim's backoff short
        self._interval = config.heartbeat_interval or DEFAULT_HEARTBEAT
        self.failure: str | None = None

    # the whole process -------------------------------------------------------------

    def run(self) -> None:
        """Send what a previous run left, then serve the queue until `stop()`."""
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
        with self._slots:
            self._slots.notify_all()

    def _shut_down(self) -> None:
        deadline = time.monotonic() + self.config.grace
        with self._slots:
            while self._held and time.monotonic() < deadline:
                self._slots.wait(max(0.0, min(0.2, deadline - time.monotonic())))
            left = list(self._held.values())
        for attempt in left:
            log.warning("stopping %s: still running after the grace", attempt.assignment.attempt_id)
            attempt.stop("agent stopped")
        self._done.set()
        self.sender.stop()
        self.pool.shutdown()
        left_over = len(self.outbox)
        if left_over:
            log.warning("%d result(s) kept in %s for the next start", left_over, self.outbox.path)
        self.outbox.close()
        self.client.close()

    # claiming ----------------------------------------------------------------------

    def _free_slots(self) -> int:
        """Wait until a slot is free (never claim for a busy agent); 0 when stopping."""
        with self._slots:
            while len(self._held) >= self.config.concurrency and not self._stopping.is_set():
                self._slots.wait()
            return 0 if self._stopping.is_set() else self.config.concurrency - len(self._held)

    def _claim_loop(self) -> None:
        self.sender.first_pass.wait()  # a restarted agent sends what is left first
        backoff = Backoff(cap=self.config.backoff_cap)
        while True:
            try:
                if not self._claim_once(backoff):
                    return
            except Exception:
                if self._stopping.is_set():
                    return  # the client was closed under a long-poll left behind
                log.exception("claiming failed; trying again")
                self._kick.wait(backoff.next_delay())
                self._kick.clear()

    def _claim_once(self, backoff: Backoff) -> bool:
        """One claim (after waiting for a free slot); False once the agent stops."""
        free = self._free_slots()
        if not free:
            return False
        try:
            found = self.client.claim(self.config.queue, self.name, free, self.config.claim_wait)
        except Unreachable as exc:
            if not backoff.failures:
                log.warning("manager unreachable, claiming again soon: %s", exc)
        except Refused as exc:
            if exc.status in FATAL_CLAIM:
                self.failure = f"the manager refused this agent: {exc.reason}"
                log.error("%s", self.failure)
                self.stop()
                return False
            log.warning("claim refused: %s", exc)
        else:
            backoff.reset()
            for document in found:
                self._take(document)
            return True
        self._kick.wait(backoff.next_delay())
        self._kick.clear()
        return True

    def _take(self, document: dict[str, Any]) -> None:
        try:
            assignment = Assignment.parse(document)
        except ValueError as exc:
            log.error("ignoring a malformed assignment: %s", exc)
            return
        if self._stopping.is_set():
            # Claimed as the agent stopped: never started, so the manager queues it again
            # once this agent's heartbeats stop.
            log.warning("stopping: not starting %s", assignment.attempt_id)
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

    def _supervise(self, attempt: AttemptRun) -> None:
        task = attempt.assignment
        try:
            if not self._acknowledged(attempt):
                return
            attempt.start(self.pool)
            completion = attempt.wait(task.timeout)
            if completion is None and attempt.stopped is None:
                completion = attempt.timed_out()
            if completion is None:
                log.info(
                    "attempt %s stopped (%s): nothing reported", task.attempt_id, attempt.stopped
                )
                return
            # Durable before the first send: a crash from here on loses nothing.
            body = attempt.result_body(self.name, completion)
            self.outbox.put(task.attempt_id, body)
            self.sender.deliver(task.attempt_id, body)  # the slot is held until it is sent
        except Exception:
            log.exception("attempt %s: the agent failed to run it", task.attempt_id)
        finally:
            with self._slots:
                self._held.pop(task.attempt_id, None)
                self._slots.notify_all()

    def _acknowledged(self, attempt: AttemptRun) -> bool:
        """Report `started` until the manager answers; run only after its 200."""
        task = attempt.assignment
        backoff = Backoff(cap=self.config.backoff_cap)
        while attempt.stopped is None:
            try:
                self.client.started(task.attempt_id, self.name)
            except Refused as exc:
                log.warning("attempt %s not started, the manager refused: %s", task.attempt_id, exc)
                return False
            except Unreachable as exc:
                if self._stopping.is_set():
                    return False
                log.info(
                    "manager unreachable, reporting %s started again soon: %s", task.attempt_id, exc
                )
                time.sleep(backoff.next_delay())
                continue
            return attempt.stopped is None
        return False

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

    def _obey(self, answer: dict[str, Any]) -> None:
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
