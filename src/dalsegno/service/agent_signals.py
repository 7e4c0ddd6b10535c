"""Wake-ups for waiting claims without a thread each, and only for their own queue.

One thread per service waits on the store's `dalsegno_agent_tasks` channel. When it is
notified, and at least every `RECHECK` seconds in case a notification was lost (or was
sent by another process on SQLite), it asks the store in one read which of the queues
that claims wait on have claimable tasks, and calls the callbacks of those queues only.
So a waiting claim costs nothing until its queue has work: 200 agents idle on one queue
add no work to a task of another (benchmarks/agents.py measures it).

The REST API's claim handler is a coroutine: while it waits it holds no thread of the
server's pool. The thread runs while claims wait, and lingers `LINGER` seconds after the
last one: an agent's claims come and go many times a second, a thread each would not.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from dalsegno.store.agent_records import TASKS_CHANNEL
from dalsegno.store.base import Store

log = logging.getLogger("dalsegno.agents")

RECHECK = 1.0  # seconds between two looks when no notification came
LINGER = 60.0  # seconds the thread outlives the last waiting claim


class TaskSignals:
    """Calls the subscribed callbacks of a queue whenever it may have claimable tasks.

    `on_tick`, when given, is called by the thread at each look with the names of the
    agents whose claims wait (the service keeps their heartbeats: `AgentService`)."""

    def __init__(
        self,
        store_of: Callable[[], Store],
        on_tick: Callable[[set[str]], None] | None = None,
    ) -> None:
        self._store_of = store_of
        self._on_tick = on_tick
        self._lock = threading.Lock()
        self._callbacks: dict[int, tuple[str, Callable[[], None]]] = {}
        self._agents: dict[int, str] = {}  # subscription -> the agent whose claim waits
        self._next = 0
        self._thread: threading.Thread | None = None

    def subscribe(
        self, queue: str, callback: Callable[[], None], agent: str | None = None
    ) -> Callable[[], None]:
        """Call `callback` (from another thread) when `queue` may have claimable tasks;
        returns the undo. `agent`: the agent whose claim waits."""
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._callbacks[key] = (queue, callback)
            if agent is not None:
                self._agents[key] = agent
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._pump, name="dalsegno-agent-claims", daemon=True
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks.pop(key, None)
                self._agents.pop(key, None)

        return unsubscribe

    def wake_all(self) -> None:
        """Call every subscribed callback now (the manager is stopping)."""
        with self._lock:
            callbacks = [callback for _, callback in self._callbacks.values()]
        _call(callbacks)

    def _pump(self) -> None:
        store = self._store_of()
        last_waiter = time.monotonic()
        while True:
            with self._lock:
                if self._callbacks:
                    last_waiter = time.monotonic()
                elif time.monotonic() - last_waiter > LINGER:
                    self._thread = None
                    return
                waiting = set(self._agents.values())
            if self._on_tick is not None and waiting:
                try:
                    self._on_tick(waiting)
                except Exception:
                    log.warning("keeping the waiting agents' beats failed", exc_info=True)
            began = time.monotonic()
            try:
                store.wait_for_notification([TASKS_CHANNEL], RECHECK)
                # The queues are read after the wait, not before it: a claim that began
                # waiting meanwhile looked before the tasks its wake-up is about were
                # committed, and the notification is spent by this look. Left out of it,
                # the claim would wait for the next look, a whole RECHECK later.
                with self._lock:
                    queues = {queue for queue, _ in self._callbacks.values()}
                ready = store.claimable_queues(sorted(queues)) if queues else set()
            except Exception:
                log.warning("looking for agent tasks failed; retrying", exc_info=True)
                ready = set()
                time.sleep(max(0.0, RECHECK - (time.monotonic() - began)))  # never spin
            if ready:
                with self._lock:
                    callbacks = [cb for queue, cb in self._callbacks.values() if queue in ready]
                _call(callbacks)
                # the woken claims take the tasks: give them a moment before looking again
                time.sleep(0.001)


def _call(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        with contextlib.suppress(Exception):  # a claim that went away meanwhile
            callback()
