"""Wake-ups for waiting claims without a thread each: one thread per service waits on the
store's `dalsegno_agent_tasks` channel and calls every waiting claim's callback.

The REST API's claim handler is a coroutine: while it waits it holds no thread of the
server's pool, so a hundred agents long-polling leave the pool to the other routes. The
thread runs only while some claim waits.
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

WAIT = 1.0  # seconds the thread waits at a time (it ends after one with no claim waiting)


class TaskSignals:
    """Calls the subscribed callbacks whenever tasks are sent to an agent queue."""

    def __init__(self, store_of: Callable[[], Store]) -> None:
        self._store_of = store_of
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from another thread) on each notification; returns the undo."""
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._callbacks[key] = callback
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._pump, name="dalsegno-agent-claims", daemon=True
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks.pop(key, None)

        return unsubscribe

    def wake_all(self) -> None:
        """Call every subscribed callback now (the manager is stopping)."""
        with self._lock:
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    def _pump(self) -> None:
        store = self._store_of()
        while True:
            with self._lock:
                if not self._callbacks:
                    self._thread = None
                    return
            began = time.monotonic()
            try:
                found = store.wait_for_notification([TASKS_CHANNEL], WAIT)
            except Exception:
                log.warning("waiting for agent tasks failed; retrying", exc_info=True)
                found = set()
            if found:
                with self._lock:
                    callbacks = list(self._callbacks.values())
                for callback in callbacks:
                    with contextlib.suppress(Exception):  # a claim that went away meanwhile
                        callback()
            else:  # never spin, even when the store answers at once (closed, unreachable)
                time.sleep(max(0.0, WAIT - (time.monotonic() - began)))
