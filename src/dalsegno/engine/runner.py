"""Runs one execution in this process: its workflow function, its graphs, its writes.

The run owns the execution's lease. Every write goes through `flush()`, which commits what
happened together in one transaction fenced by the lease token (group commit) and reads
back the execution's state, so a cancel asked from another process is seen at once; a
heartbeat thread renews the lease and looks for a cancel while the graph is quiet.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from dalsegno.engine import events, store_health
from dalsegno.engine.attempts import Completion, describe, run_operation, with_changes
from dalsegno.engine.context import EventLogger, OperationContext, WorkflowContext
from dalsegno.engine.deployments import DeploymentReads
from dalsegno.engine.graph import Graph
from dalsegno.engine.instances import attach
from dalsegno.engine.lease import DEFAULT_LEASE_TIMEOUT, this_owner
from dalsegno.engine.outcomes import ExecutionAbandoned, ExecutionCancelled, GraphFailed
from dalsegno.engine.pool import WorkerPool
from dalsegno.engine.process import ChildOperation
from dalsegno.engine.references import IMPORT_ANY, WorkflowSource, bound_operation
from dalsegno.engine.scheduler import GraphRun
from dalsegno.model.errors import (
    DalsegnoError,
    GraphError,
    LeaseLostError,
    NotFoundError,
    RefusedTransitionError,
    StoreFailedError,
    StoreUnavailableError,
    StoreWriteUnknownError,
)
from dalsegno.model.limits import clip, too_long
from dalsegno.model.records import (
    AttemptEnd,
    Batch,
    ExecutionChange,
    ExecutionRecord,
    NewEvent,
    NewTask,
    StoredGraph,
    SubgraphRecord,
    TaskRecord,
)
from dalsegno.model.states import (
    CANCELLING_STATES,
    CancelMode,
    ExecutionState,
    owner_end_sources,
)
from dalsegno.store.base import Store

if TYPE_CHECKING:
    from dalsegno.engine.scheduler import GraphRun as _GraphRun

E = ExecutionState
T = TypeVar("T")
log = logging.getLogger("dalsegno.manager")

CrashHook = Callable[[str, str, str], bool]
EventListener = Callable[[Sequence[NewEvent]], None]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How executions run in this process."""

    concurrency: int = 32
    lease_timeout: float = DEFAULT_LEASE_TIMEOUT
    poll_interval: float = 0.25
    default_retries: int = 0
    default_retry_interval: float = 1.0
    agent_timeout: float | None = None  # None: DALSEGNO_AGENT_TIMEOUT, else lease_timeout
    # which workflows this process runs: any it can import (the CLI), or a manager's
    # allow-list (`dalsegno manager --workflows`), which refuses the rest before importing
    workflows: WorkflowSource = IMPORT_ANY


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended here: an end state, or abandoned (lease lost, crash) with no write."""

    status: ExecutionState | None
    error: str | None = None

    @property
    def abandoned(self) -> bool:
        return self.status is None


def env_crash_hook() -> CrashHook | None:
    """`DALSEGNO_CRASH_AT=point[:key]` makes this process SIGKILL itself there (crash tests)."""
    spec = os.environ.get("DALSEGNO_CRASH_AT")
    if not spec:
        return None
    point, _, key = spec.partition(":")

    def crash(at: str, _graph: str, task_key: str) -> bool:
        if at == point and (not key or key == task_key):
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    return crash


class ExecutionRun:
    """One execution, run by this process under its lease."""

    def __init__(
        self,
        store: Store,
        execution: ExecutionRecord,
        workflow_name: str,
        config: EngineConfig,
        *,
        resume: bool,
        listener: EventListener | None = None,
        crash_hook: CrashHook | None = None,
        stored_graphs: dict[str, StoredGraph] | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.store = store
        self.execution_id = execution.id
        self.token = execution.lease_token
        self.workflow_name = workflow_name
        self.config = config
        self.concurrency = config.concurrency
        self.poll_interval = config.poll_interval
        self.resume = resume
        # stored with the execution, read at every take-up: a dry run stays dry, and every
        # run builds its graphs with the same retry settings (docs/design.md, "Dry runs")
        self.dry_run = execution.dry_run
        self.task_retries = execution.task_retries
        self.task_retry_interval = execution.task_retry_interval
        self.deployment_id = execution.deployment_id  # `ctx.deployment` (docs/lifecycle.md)
        self.status = execution.status
        self.cancel_mode: CancelMode | None = CancelMode.of(execution.status)
        owner = this_owner()
        self.worker_name = f"manager {owner.host}:{owner.pid}"
        self.batch = self._new_batch()
        self._listener = listener
        self._crash_hook = crash_hook if crash_hook is not None else env_crash_hook()
        self._logs: deque[NewEvent] = deque()
        self._completions: queue.SimpleQueue[Completion | None] = queue.SimpleQueue()
        self._lost: str | None = None
        if stored_graphs is None:
            stored_graphs = store.load_graphs(execution.id) if resume else {}
        self._stored_graphs = stored_graphs
        self._graphs: dict[str, Graph] = {}
        self._current: _GraphRun | None = None
        self._pool: WorkerPool | None = pool
        self._own_pool = pool is None
        self.draining = False
        self._drain_deadline = 0.0
        self._said_waiting = False
        self._ignored: dict[tuple[int, int], tuple[str, str]] = {}
        self._children: dict[tuple[int, int], ChildOperation] = {}
        self._abandoned: dict[tuple[int, int], tuple[str, str]] = {}
        self._stop = threading.Event()
        self._last_renewal = time.monotonic()
        self._heartbeat: threading.Thread | None = None
        # the deployments (with their blueprints) lifecycle tasks act on, read once a run
        self._deployments = DeploymentReads(store)

    # the whole run ---------------------------------------------------------------

    def run(self, func: Callable[..., Any], params: dict[str, Any]) -> Outcome:
        """Run the workflow function to its end and record how it ended."""
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"dalsegno-heartbeat-{self.execution_id[:8]}", daemon=True
        )
        self._heartbeat.start()
        try:
            status, error = self._call(func, params)
            self.crash_point("before_finish", "", "")
            return self.finish(status, error)
        except ExecutionAbandoned as exc:
            return Outcome(None, str(exc) or "abandoned")
        finally:
            self._stop.set()
            if self._pool is not None and self._own_pool:
                self._pool.shutdown()
            if self._abandoned:
                threading.Thread(target=self._record_late_results, daemon=True).start()

    def _call(self, func: Callable[..., Any], params: dict[str, Any]) -> tuple[E, str | None]:
        ctx = WorkflowContext(
            self.execution_id,
            self.workflow_name,
            params,
            self.resume,
            EventLogger(self._logs.append),
            self.open_graph,
        )
        try:
            if self.cancel_mode is not None:
                raise ExecutionCancelled
            if self.deployment_id is not None:
                ctx.deployment = self._deployments.workflow(self.deployment_id)
            func(ctx, **params)
        except ExecutionCancelled:
            return E.CANCELLED, None
        except ExecutionAbandoned:
            raise
        except StoreUnavailableError as exc:  # an outage, not the workflow's failure
            store_health.of(self.store).abandoned(self.execution_id, str(exc))
            self._lost = str(exc)
            raise ExecutionAbandoned(str(exc)) from None
        except (GraphFailed, DalsegnoError) as exc:
            return E.FAILED, clip(str(exc))
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: the workflow's own error
            trace = clip(traceback.format_exc().rstrip())
            self._logs.append(NewEvent("log", trace, level="error", created_at=time.time()))
            return E.FAILED, describe(exc)
        return E.COMPLETED, None

    def finish(self, status: ExecutionState, error: str | None) -> Outcome:
        """Move the execution to its end state and release the lease, in one commit."""
        for _ in range(5):
            target = status
            if self.status in CANCELLING_STATES and target is E.COMPLETED:
                target = E.CANCELLED  # a cancel arrived as the last task ended
            if target is E.FAILED and self.status in (E.FORCE_CANCELLING, E.KILL_CANCELLING):
                target = E.CANCELLED
            expected = owner_end_sources(target)
            if target is E.CANCELLED and self.status not in CANCELLING_STATES:
                return Outcome(self.status, error)  # cannot be: a cancel always comes first
            self.batch.execution = ExecutionChange(expected, target, error, release_lease=True)
            self.batch.events.append(self._end_event(target, error))
            try:
                self.flush()
            except ExecutionAbandoned as exc:
                return Outcome(None, str(exc) or "abandoned")
            except RefusedTransitionError:
                self.batch = self._new_batch()
                seen = self.store.read_status(self.execution_id)
                if seen is None or seen[1] != self.token:
                    return Outcome(None, "lease lost")
                self.status = seen[0]
                continue
            return Outcome(target, error)
        return Outcome(None, "could not record the end state")

    def _end_event(self, status: ExecutionState, error: str | None) -> NewEvent:
        if status is E.COMPLETED:
            return events.workflow_succeeded(self.workflow_name)
        if status is E.CANCELLED:
            return events.workflow_cancelled(self.workflow_name)
        return events.workflow_failed(self.workflow_name, error or "failed")

    # graphs ------------------------------------------------------------------------

    def open_graph(self, name: str) -> Graph:
        if not isinstance(name, str) or not name:
            msg = f"a graph name must be a non-empty string, not {name!r}"
            raise ValueError(msg)
        refused = too_long("a graph name", name)
        if refused is not None:
            raise GraphError(refused)
        self.check_alive()
        if self.cancel_mode is not None:
            raise ExecutionCancelled
        if self.draining:
            raise ExecutionAbandoned("handed over to another manager")
        graph = self._graphs.get(name)
        if graph is None:
            graph = self._graphs[name] = Graph(self, name, self._stored_graphs.get(name))
        return graph

    def store_graph(
        self,
        name: str,
        tasks: list[NewTask],
        edges: list[tuple[str, str]],
        subgraphs: Sequence[SubgraphRecord] = (),
        node_edges: Sequence[tuple[str, str]] = (),
    ) -> StoredGraph:
        self.flush()

        def before_commit() -> None:
            self.crash_point("graph_storing", name, "")

        stored = events.graph_stored(name, len(tasks), len(edges))
        graph = self._patiently(
            lambda: self.store.store_graph(
                self.execution_id,
                self.token,
                name,
                tasks,
                edges,
                [stored],
                before_commit,
                subgraphs=subgraphs,
                node_edges=node_edges,
            )
        )
        if self._listener is not None:
            self._listener([stored])
        return graph

    # writes ------------------------------------------------------------------------

    def _new_batch(self) -> Batch:
        return Batch(self.execution_id, self.token, 0.0)

    def flush(self) -> None:
        """Commit what happened together: one transaction, fenced by the lease token."""
        logs = self._logs
        while logs:
            self.batch.events.append(logs.popleft())
        batch = self.batch
        if not batch:
            return

        def apply() -> ExecutionState:
            batch.lease_expires_at = time.time() + self.config.lease_timeout
            return self.store.apply(batch)

        status = self._patiently(apply)
        self._last_renewal = time.monotonic()
        self.batch = self._new_batch()
        self._observe(status)
        if self._listener is not None:
            written = batch.events + batch.start_events if status is E.STARTED else batch.events
            if written:
                self._listener(written)

    def _patiently(self, write: Callable[[], T]) -> T:
        """`write()`, tried again while the store fails on a passing fault and the owner's
        patience lasts (`store_health`); past it, or when the lease is lost, the run is
        abandoned to a takeover, nothing failed."""
        health = store_health.of(self.store)
        while True:
            began = time.time()
            try:
                done = write()
            except LeaseLostError as exc:
                self._lost = str(exc)
                raise ExecutionAbandoned(str(exc)) from None
            except StoreUnavailableError as exc:
                health.failed(str(exc))
                waited = time.monotonic() - self._last_renewal
                if (
                    isinstance(exc, StoreFailedError | StoreWriteUnknownError)
                    or self.draining
                    or not health.owner_may_wait(waited, self.config.lease_timeout)
                ):
                    health.abandoned(self.execution_id, str(exc))
                    self._lost = str(exc)
                    raise ExecutionAbandoned(str(exc)) from None
                time.sleep(min(1.0, self.config.lease_timeout / 10))
                continue
            health.answered(began, self.config.lease_timeout)
            return done

    def _observe(self, status: ExecutionState) -> None:
        self.status = status
        mode = CancelMode.of(status)
        if mode is not None and (self.cancel_mode is None or mode.rank > self.cancel_mode.rank):
            self.cancel_mode = mode
            self._completions.put(None)  # wake the scheduler

    def drain(self, grace: float) -> None:
        """Hand over: start no new task, give resumable running operations up to `grace`
        seconds to end and non-resumable ones all the time they take.

        The run then stops with what it wrote (the execution stays `started`) and the
        caller releases the lease, so another manager resumes it at once.
        """
        self._drain_deadline = time.monotonic() + grace
        self.draining = True
        self._completions.put(None)

    def drain_expired(self) -> bool:
        return self.draining and time.monotonic() >= self._drain_deadline

    def waiting_for(self, keys: list[str]) -> None:
        """A hand-over waits for non-resumable operations: said once, in the log."""
        if not self._said_waiting:
            self._said_waiting = True
            log.info(
                "execution %s: handed over once %s end%s (not resumable)",
                self.execution_id,
                ", ".join(keys),
                "s" if len(keys) == 1 else "",
                extra={"execution_id": self.execution_id},
            )

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def check_alive(self) -> None:
        if self._lost is not None:
            raise ExecutionAbandoned(self._lost)

    def crash_point(self, point: str, graph: str, key: str) -> None:
        if self._crash_hook is not None and self._crash_hook(point, graph, key):
            self._lost = f"simulated crash at {point} {graph}/{key}".rstrip("/ ")
            raise ExecutionAbandoned(self._lost)

    # running operations --------------------------------------------------------------

    def submit(self, graph: GraphRun, task: TaskRecord, attempt: int, resume: bool) -> None:
        self._current = graph
        completions = self._completions
        if self.dry_run:  # nothing is called: the task says what it would run, and succeeds
            self._logs.append(
                NewEvent(
                    "log",
                    clip(f"would run {task.operation} with {task.kwargs_json}"),
                    graph.name,
                    task.key,
                    created_at=time.time(),
                )
            )
            completions.put(Completion(task.id, attempt, True, "null"))
            return
        if self._pool is None:
            self._pool = WorkerPool(self.concurrency)
        try:  # a lifecycle task's operation: only one this manager serves (docs/security.md)
            bound = task.instance is not None
            func, definition = bound_operation(self.config.workflows, task.operation, bound)
        except DalsegnoError as exc:
            completions.put(Completion(task.id, attempt, False, None, str(exc), None, False))
            return
        if definition.process:
            self._submit_child(graph, task, attempt, resume)
            return
        ctx = OperationContext(
            execution_id=self.execution_id,
            graph=graph.name,
            task_key=task.key,
            retries=task.retries,
            attempt=attempt,
            resume=resume,
            idempotency_key=f"{self.execution_id}-{task.id}",
            logger=EventLogger(self._logs.append, graph.name, task.key),
        )
        kwargs, task_id = task.kwargs, task.id
        if task.instance is None:
            self._pool.submit(lambda: completions.put(run_operation(func, ctx, kwargs, task_id)))
            return

        def lifecycle_job() -> None:  # reads its instances when the attempt starts
            view = self._lifecycle_view(task, attempt)
            if isinstance(view, Completion):
                completions.put(view)
                return
            views = attach(ctx, view)
            completions.put(with_changes(run_operation(func, ctx, kwargs, task_id), view, views))

        self._pool.submit(lifecycle_job)

    def _lifecycle_view(self, task: TaskRecord, attempt: int) -> dict[str, Any] | Completion:
        """What a lifecycle task's operation sees (`dalsegno.engine.instances`), read from
        the store now; else a failed attempt (recoverable unless something is gone)."""
        assert task.instance is not None
        try:
            return self._deployments.task_view(task.instance)
        except NotFoundError as exc:
            return Completion(task.id, attempt, False, None, str(exc), None, False)
        except Exception as exc:  # noqa: BLE001 - the attempt fails; a retry reads again
            error = f"reading the node instance failed: {describe(exc)}"
            return Completion(task.id, attempt, False, None, error, None, True)

    def _submit_child(self, graph: GraphRun, task: TaskRecord, attempt: int, resume: bool) -> None:
        context: dict[str, Any] = {
            "execution_id": self.execution_id,
            "graph": graph.name,
            "task_key": task.key,
            "retries": task.retries,
            "attempt": attempt,
            "resume": resume,
            "idempotency_key": f"{self.execution_id}-{task.id}",
        }
        child = ChildOperation(
            task.operation,
            task.id,
            attempt,
            context,
            task.kwargs_json,
            self._logs.append,
        )
        self._children[(task.id, attempt)] = child
        completions, children = self._completions, self._children

        def job() -> None:
            if task.instance is not None:  # the child sees, and hands back, the same view
                view = self._lifecycle_view(task, attempt)
                if isinstance(view, Completion):
                    children.pop((child.task_id, child.attempt), None)
                    completions.put(view)
                    return
                context["lifecycle"] = view
            try:
                completion = child.run()
            except BaseException as exc:  # noqa: BLE001 - the attempt must end all the same
                error = f"running the operation's process failed: {describe(exc)}"
                completion = Completion(child.task_id, child.attempt, False, None, error)
            finally:
                children.pop((child.task_id, child.attempt), None)
            completions.put(completion)

        assert self._pool is not None
        self._pool.submit(job)

    def stop_operation(self, task_id: int, attempt: int) -> bool:
        """Stop a running attempt: a child process is killed; a thread can only be left.

        Returns True when the operation was really stopped.
        """
        child = self._children.get((task_id, attempt))
        if child is None:
            self.pool_replace_abandoned()
            return False
        child.stop()
        return True

    def wake(self) -> None:
        """Wake the scheduler (an agent reported a result)."""
        self._completions.put(None)

    def take_completions(self, timeout: float) -> list[Completion]:
        """Wait up to `timeout` for the first completion, then take all that are there."""
        found: list[Completion] = []
        try:
            first = self._completions.get(timeout=timeout)
        except queue.Empty:
            return found
        if first is not None:
            found.append(first)
        while True:
            try:
                more = self._completions.get_nowait()
            except queue.Empty:
                break
            if more is not None:
                found.append(more)
        # What the operations logged comes before the outcomes that follow it.
        logs, events_out = self._logs, self.batch.events
        while logs:
            events_out.append(logs.popleft())
        return found

    def pool_replace_abandoned(self) -> None:
        if self._pool is not None:
            self._pool.replace_abandoned()

    def ignore_late(self, graph: GraphRun, task_id: int, attempt: int) -> None:
        self._ignored[(task_id, attempt)] = (graph.name, graph.tasks[task_id].key)

    def late_result(self, completion: Completion) -> None:
        """An attempt this run gave up on (timeout, kill) ended: note it, change nothing."""
        where = self._ignored.pop((completion.task_id, completion.attempt), None)
        if where is None:
            return
        outcome = "succeeded" if completion.succeeded else f"failed: {completion.error}"
        self.batch.events.append(
            events.late_result(where[0], where[1], completion.attempt, outcome, time.time())
        )

    def abandon_running(self, graph: GraphRun, running: dict[int, int]) -> None:
        """Force-cancel leaves running operations to end alone; their results are recorded."""
        for task_id, attempt in running.items():
            self._abandoned[(task_id, attempt)] = (graph.name, graph.tasks[task_id].key)

    def _record_late_results(self) -> None:
        while self._abandoned:
            completion = self._completions.get()
            if completion is None:
                continue
            where = self._abandoned.pop((completion.task_id, completion.attempt), None)
            if where is None:
                continue
            outcome = "succeeded" if completion.succeeded else "failed"
            now = time.time()
            try:
                self.store.record_late_result(
                    AttemptEnd(
                        completion.task_id, completion.attempt, outcome, now, completion.error
                    ),
                    [events.late_result(where[0], where[1], completion.attempt, outcome, now)],
                )
            except Exception:  # noqa: BLE001 - a best-effort note after the execution ended
                return

    # lease -------------------------------------------------------------------------

    def _beat(self) -> None:
        renew_every = self.config.lease_timeout / 3
        health = store_health.of(self.store)
        while not self._stop.wait(min(self.poll_interval, renew_every)):
            began = time.time()
            try:
                seen = self.store.read_status(self.execution_id)
                if seen is None or seen[1] != self.token:
                    self._lose("another owner took the execution over")
                    return
                self._observe(seen[0])
                if time.monotonic() - self._last_renewal >= renew_every:
                    expires = time.time() + self.config.lease_timeout
                    if not self.store.renew_lease(self.execution_id, self.token, expires):
                        self._lose("the lease could not be renewed: another owner holds it")
                        return
                    self._last_renewal = time.monotonic()
                health.answered(began, self.config.lease_timeout)
            except StoreUnavailableError as exc:  # a passing fault: try again at the next beat
                health.failed(str(exc))
            except Exception:  # noqa: BLE001, S112 - a store hiccup: try again at the next beat
                continue

    def _lose(self, reason: str) -> None:
        self._lost = f"lease of execution {self.execution_id} lost: {reason}"
        self._completions.put(None)
