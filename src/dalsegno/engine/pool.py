"""Daemon worker threads for manager-side operations.

An operation that timed out or was killed by a cancel cannot be stopped inside a thread:
it is abandoned (its result is ignored) and a fresh thread takes its place, so the pool
keeps its size. Daemon threads never hold the process open once the execution ended. A
job is expected to catch what it runs (`run_operation` does); whatever still escapes it is
logged, and the worker serves the next job (docs/design.md, "Misbehaving operations").
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

Job = Callable[[], None]
log = logging.getLogger("dalsegno.engine")


class WorkerPool:
    """A fixed number of workers that run jobs in the order they were submitted."""

    def __init__(self, size: int, name: str = "dalsegno-worker") -> None:
        if size < 1:
            msg = f"concurrency must be at least 1, not {size}"
            raise ValueError(msg)
        self.size = size
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._surplus = 0
        self._spawned = 0
        for _ in range(size):
            self._spawn()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def replace_abandoned(self) -> None:
        """A worker is stuck in an abandoned job: add one; the stuck one leaves when done."""
        with self._lock:
            self._surplus += 1
        self._spawn()

    def shutdown(self) -> None:
        for _ in range(self._spawned):
            self._jobs.put(None)

    def _spawn(self) -> None:
        with self._lock:
            self._spawned += 1
            number = self._spawned
        thread = threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True)
        thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:
                log.exception("a job of %s ended on an unexpected error", self._name)
            with self._lock:
                if self._surplus > 0:
                    self._surplus -= 1
                    return
