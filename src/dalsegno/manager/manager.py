"""The management worker: takes executions from the store and runs them, many at once.

It claims `pending` executions, and takes over every execution whose lease expired (or
whose owner on this host is dead): a `started` one is resumed by the rules of
docs/design.md, a `*cancelling` one has its cancel finished; each through the lifecycle
(`dalsegno.engine.lifecycle`), as every other path. Claims are guarded updates on the
state and lease token read, so two managers never take one execution twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from dalsegno.engine import store_health
from dalsegno.engine.lease import this_owner
from dalsegno.engine.lifecycle import take_up_of_claimed
from dalsegno.engine.pool import WorkerPool
from dalsegno.engine.runner import ExecutionRun, Outcome
from dalsegno.model.errors import DalsegnoError, StoreFailedError, StoreUnavailableError
from dalsegno.model.records import ExecutionRecord, StoredGraph
from dalsegno.model.states import EXECUTION_END_STATES, ExecutionState, TakeUp
from dalsegno.service.executions import ExecutionService
from dalsegno.store.notify import PENDING

log = logging.getLogger("dalsegno.manager")
E = ExecutionState
SLACK = 16  # stale candidates looked at beyond the free slots (other live owners here)
LISTEN_TIMEOUT = 5.0  # seconds a wait for notifications lasts before it looks at `stop`


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    max_executions: int = 64
    grace: float = 10.0  # seconds running operations get to end on a graceful stop


class Manager:
    """Runs executions from one store until stopped."""

    def __init__(self, service: ExecutionService, config: ManagerConfig | None = None) -> None:
        self.service = service
        self.store = service.store
        self.engine = service.config
        self.lifecycle = service.lifecycle
        self.config = config or ManagerConfig()
        self.owner = this_owner()
        self.health = store_health.of(self.store)  # it counts from now (docs/design.md section 3)
        self.pool = WorkerPool(self.engine.concurrency, name="dalsegno-op")
        self._runs: dict[str, ExecutionRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loop_thread: threading.Thread | None = None

    # life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the claim loop (it takes over what an earlier manager left at once)."""
        self._loop_thread = threading.Thread(target=self._loop, name="dalsegno-claims", daemon=True)
        self._loop_thread.start()
        listening = threading.Thread(target=self._listen, name="dalsegno-wakeups", daemon=True)
        listening.start()

    def _listen(self) -> None:
        """Wake the claim loop on the store's notifications: another process (a manager, the
        CLI, an API) made work claimable. Lost ones are covered by the loop's slow tick."""
        while not self._stopping.is_set():
            try:
                if self.store.wait_for_notification([PENDING], LISTEN_TIMEOUT):
                    self._wake.set()
            except Exception:  # the tick still polls; do not spin
                log.exception("waiting for notifications failed; retrying")
                self._stopping.wait(1.0)

    def wake(self) -> None:
        """Look for work now (a new execution, a resume)."""
        self._wake.set()

    def stop(self, grace: float | None = None) -> None:
        """Stop taking work and hand every execution over (docs/design.md, "Graceful
        stop"): resumable running operations get `grace` seconds to end, non-resumable
        ones are awaited to their end, then the leases are released. Waits in short steps,
        so a second signal can still stop the process at once."""
        self._stopping.set()
        self._wake.set()
        grace = self.config.grace if grace is None else grace
        with self._lock:
            runs = list(self._runs.values())
            threads = list(self._threads.values())
        for run in runs:
            run.drain(grace)
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        if self._loop_thread is not None:
            self._loop_thread.join(5.0)
        self.pool.shutdown()

    @property
    def running(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    # claiming --------------------------------------------------------------------

    def _loop(self) -> None:
        tick = max(0.05, min(1.0, self.engine.lease_timeout / 3))
        faulted = False
        while not self._stopping.is_set():
            wait = tick
            began = time.time()
            try:
                self._take_over_stale()
                self._claim_pending()
                expiry = self.store.next_lease_expiry(self.owner)
                now = time.time()
                if expiry is not None and expiry > now:  # be there when a lease runs out
                    wait = min(tick, expiry - now + 0.01)
                self.health.answered(began, self.engine.lease_timeout)
                if faulted:
                    log.info("the store answers again; claiming executions")
                faulted = False
            except StoreFailedError:
                pass  # said once by the store; nothing can be claimed from it any more
            except StoreUnavailableError as exc:  # a passing fault: said once, tried again
                self.health.failed(str(exc))
                if not faulted:
                    log.warning("claiming executions: %s; retrying", exc)
                faulted = True
            except Exception:  # a store outage must not end the loop: try again next tick
                log.exception("claiming executions failed; retrying")
            self._wake.wait(wait)
            self._wake.clear()

    def _free(self) -> int:
        with self._lock:  # a spawned run registers itself a moment later: count its thread
            return self.config.max_executions - len(self._threads.keys() | self._runs.keys())

    def _claim_pending(self) -> None:
        free = self._free()
        if free <= 0 or self._stopping.is_set():
            return
        expires = time.time() + self.engine.lease_timeout
        for record in self.store.claim_pending(self.owner, expires, free):
            log.info(
                "claimed execution %s (%s)",
                record.id,
                record.workflow,
                extra={"execution_id": record.id, "workflow": record.workflow},
            )
            self._spawn(record, takeover=False)

    def _take_over_stale(self) -> None:
        free = self._free()
        if free <= 0 or self._stopping.is_set():
            return
        now = time.time()
        with self._lock:
            mine = set(self._threads)
        # The executions this host holds come back too (the caller tells which are dead):
        # this manager's own must not fill the limit and hide another's expired lease.
        for record in self.store.list_stale(now, self.owner.host, free + len(mine) + SLACK):
            if free <= 0:
                break
            if record.id in mine or not self.health.lease_is_free(
                record.lease_owner, record.lease_expires_at, self.engine.lease_timeout, now
            ):
                continue  # a stall every process shared is not its owner's death
            # a takeover keeps the state; the token grows
            claimed = self.store.claim(
                self.lifecycle.claim(record, record.status, owner=self.owner), [], []
            )
            if claimed is not None:
                log.info(
                    "took over execution %s (%s)",
                    claimed.id,
                    claimed.status,
                    extra={"execution_id": claimed.id, "workflow": claimed.workflow},
                )
                self._spawn(claimed, takeover=True)
                free -= 1

    # running ---------------------------------------------------------------------

    def _spawn(self, record: ExecutionRecord, takeover: bool) -> None:
        thread = threading.Thread(
            target=self._run,
            args=(record, takeover),
            name=f"dalsegno-exec-{record.id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._threads[record.id] = thread
        thread.start()

    def _run(self, record: ExecutionRecord, takeover: bool) -> None:
        try:
            outcome = self._execute(record, takeover)
            where = {"execution_id": record.id, "workflow": record.workflow}
            if outcome.abandoned:
                log.info("execution %s left here: %s", record.id, outcome.error, extra=where)
            elif outcome.status in EXECUTION_END_STATES:
                log.info(
                    "execution %s ended %s",
                    record.id,
                    outcome.status,
                    extra={**where, "status": outcome.status, "error": outcome.error},
                )
            else:
                log.info("execution %s handed over (%s)", record.id, outcome.status, extra=where)
        except StoreUnavailableError as exc:  # before its run began (loading its graphs)
            self.health.failed(str(exc))
            self.health.abandoned(record.id, str(exc))
            log.warning("execution %s left here: %s", record.id, exc)
        except Exception:
            log.exception("execution %s stopped on an unexpected error", record.id)
        finally:
            with self._lock:
                run = self._runs.pop(record.id, None)
                self._threads.pop(record.id, None)
            try:
                if run is not None and run.draining and not run.lost:
                    self.store.release(record.id, run.token)
            except Exception:  # the lease then expires: a takeover all the same
                log.exception("releasing execution %s failed", record.id)
            self._wake.set()

    def _execute(self, record: ExecutionRecord, takeover: bool) -> Outcome:
        """Run a claimed execution by the kind of its take-up (`dalsegno.engine.lifecycle`):
        a takeover is an automatic resume by the rules of docs/design.md."""
        graphs = self.store.load_graphs(record.id)
        take_up = take_up_of_claimed(record, takeover, bool(graphs))
        name = record.workflow.rpartition(":")[2]
        try:
            func, definition = self.engine.workflows.resolve(record.workflow)
            name = definition.name
        except DalsegnoError as exc:
            run = self._register(record, name, take_up, {})
            return run.finish(E.FAILED, f"Cannot resume - {exc}" if take_up.resumes else str(exc))
        run = self._register(record, name, take_up, graphs)
        by = cause = None
        if takeover:
            by = f"manager {self.owner.host}:{self.owner.pid}"
            cause = self.health.cause_of_takeover(record.id, self.engine.lease_timeout)
        return self.lifecycle.run(
            run, record, take_up, func, definition, taken_over_by=by, cause=cause
        )

    def _register(
        self,
        record: ExecutionRecord,
        name: str,
        take_up: TakeUp,
        graphs: dict[str, StoredGraph],
    ) -> ExecutionRun:
        run = self.lifecycle.open(record, name, take_up, graphs=graphs, pool=self.pool)
        with self._lock:
            self._runs[record.id] = run
        if self._stopping.is_set():
            run.drain(0.0)
        return run
