"""Is this manager ready for work? What `/readyz` answers to load balancers and orchestrators.

Ready means: the store answers a read within `TIMEOUT` seconds, its schema is at the
migration this version needs, and the manager is not stopping. The read runs in a thread
of its own, so a stalled database makes the answer "not ready" in `TIMEOUT`, not a request
that hangs; while one check is still stuck, the next ones answer at once from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dalsegno.store.migrate import HEAD

if TYPE_CHECKING:
    from dalsegno.service.executions import ExecutionService

TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str  # why not, or "ready"
    schema: str | None = None


class ReadinessCheck:
    """Checks the store and the schema; `stopping()` tells whether the manager is stopping."""

    def __init__(
        self,
        service: ExecutionService,
        stopping: Callable[[], bool] = lambda: False,
        timeout: float = TIMEOUT,
    ) -> None:
        self._service = service
        self._stopping = stopping
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dalsegno-readyz")
        self._pending: Future[str | None] | None = None
        self._lock = threading.Lock()

    def check(self) -> Readiness:
        if self._stopping():
            return Readiness(False, "the manager is stopping")
        failure = self._service.store.failure()  # its file deleted, replaced or corrupt
        if failure is not None:
            return Readiness(False, f"the store cannot be used: {failure}")
        with self._lock:
            if self._pending is None or self._pending.done():
                self._pending = self._pool.submit(self._service.store.schema_revision)
            pending = self._pending
        try:
            revision = pending.result(timeout=self._timeout)
        except FutureTimeout:
            return Readiness(False, f"the store did not answer within {self._timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - whatever the database said is the reason
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            return Readiness(False, f"the store cannot be read: {reason}")
        if revision != HEAD:
            why = f"the schema is at {revision or 'nothing'}, this version needs {HEAD}"
            return Readiness(False, why, revision)
        return Readiness(True, "ready", revision)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
