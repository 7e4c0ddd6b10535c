"""The lifecycle: every path that starts, resumes, takes over or finishes the cancel of an
execution goes through here (docs/design.md, "The lifecycle").

A take-up is one of `TakeUp`: a new start, a person's resume of a failed or cancelled
execution, a person's resume of a crashed one (the takeover a manager would do), a
manager's takeover, finishing a cancel whose owner is gone. It is claimed in one
transaction that writes the resets the rules name (`dalsegno.engine.fates`), honours the
lock key (a resumed execution waits in `queued` like a new one) and counts the run; the
kind is recorded with a `pending` execution, so the manager that claims it knows what it
runs. Then `run` carries it out, the same way whoever runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from dalsegno.engine import events
from dalsegno.engine.lease import this_owner
from dalsegno.engine.pool import WorkerPool
from dalsegno.engine.resume import plan_resume
from dalsegno.engine.runner import CrashHook, EngineConfig, EventListener, ExecutionRun, Outcome
from dalsegno.model.definitions import WorkflowDefinition
from dalsegno.model.errors import ConflictError
from dalsegno.model.records import (
    AttemptEnd,
    Claim,
    ExecutionRecord,
    LeaseOwner,
    NewEvent,
    StoredGraph,
    lock_waiting,
)
from dalsegno.model.states import CANCELLING_STATES, ExecutionState, TakeUp, TaskState
from dalsegno.store.base import Store

E = ExecutionState


def take_up_of_claimed(record: ExecutionRecord, takeover: bool, has_graphs: bool) -> TakeUp:
    """The kind of take-up of an execution a manager claimed: a stale lease is a takeover
    (or the end of a cancel); a pending one says what it waits for (before migration 0008
    it did not: a pending execution with graphs was a resume handed over)."""
    if takeover:
        return TakeUp.FINISH_CANCEL if record.status in CANCELLING_STATES else TakeUp.TAKEOVER
    if record.take_up is not None:
        return TakeUp(record.take_up)
    return TakeUp.RESUME if has_graphs else TakeUp.START


class Lifecycle:
    """Claims and runs of one store's executions in this process."""

    def __init__(self, store: Store, config: EngineConfig) -> None:
        self.store = store
        self.config = config

    # claims ----------------------------------------------------------------------

    def claim(
        self,
        execution: ExecutionRecord,
        status: ExecutionState = E.STARTED,
        *,
        owned: bool = True,
        take_up: TakeUp | None = None,
        honour_lock: bool = False,
        owner: LeaseOwner | None = None,
    ) -> Claim:
        """A claim from the state and token last seen: for this process (`owned`; as
        `owner` when given), or handed to whichever manager claims it next."""
        return Claim(
            execution_id=execution.id,
            expected_status=execution.status,
            expected_token=execution.lease_token,
            owner=(owner or this_owner()) if owned else None,
            lease_expires_at=time.time() + self.config.lease_timeout if owned else None,
            status=status,
            take_up=None if take_up is None else take_up.value,
            honour_lock=honour_lock,
        )

    def claim_resume(
        self,
        execution: ExecutionRecord,
        graphs: dict[str, StoredGraph],
        take_up: TakeUp,
        reset_operations: bool,
        definition: WorkflowDefinition,
        *,
        here: bool,
        actor: str | None = None,
    ) -> tuple[ExecutionRecord, list[NewEvent]]:
        """Take a person's resume up in one transaction: the resets the rules name, the
        "Resuming" event, the lock key honoured, the kind recorded.

        `here`: this process runs it (`started`, or `queued` behind its lock key); else it
        is handed to a manager (`pending`, or `queued`). A crashed execution keeps its
        state: its lease becomes void (or this process's), as a takeover's would.
        """
        tasks = [task for graph in graphs.values() for task in graph.tasks]
        plan = plan_resume(
            execution,
            tasks,
            reset_operations,
            definition.resumable,
            take_up=take_up,
            detail=False,
            graphs=graphs.values(),
        )
        now = time.time()
        resumed = by(actor, events.workflow_resumed(definition.name, plan.reset_keys))
        by_id = {task.id: task for task in tasks}
        reset_events = [
            by(
                actor,
                events.task_reset(by_id[c.task_id].graph, by_id[c.task_id].key, c.expected, now),
            )
            for c in plan.resets
        ]
        interrupted = [
            AttemptEnd(c.task_id, by_id[c.task_id].attempts - 1, "interrupted", now, None)
            for c in plan.resets
            if c.expected in (TaskState.SENT, TaskState.STARTED) and by_id[c.task_id].attempts
        ]
        if take_up is TakeUp.RESUME:
            claim = self.claim(
                execution,
                E.STARTED if here else E.PENDING,
                owned=here,
                take_up=take_up,
                honour_lock=True,
            )
        else:  # a crashed execution: a takeover's claim, by hand
            claim = self.claim(execution, execution.status, owned=here, take_up=take_up)
        written = [resumed, *reset_events]
        claimed = self.store.claim(claim, plan.resets, written, interrupted, plan.subgraph_resets)
        if claimed is None:
            msg = f"Cannot resume - execution {execution.id} changed while resuming; try again"
            raise ConflictError(msg)
        for change in plan.resets:
            task = by_id[change.task_id]
            task.status, task.retries, task.error = change.status, change.retries, change.error
            task.result_json, task.next_run_at = change.result_json, change.next_run_at
        if plan.subgraph_resets:
            subs = {
                (graph.id, sub.key): sub for graph in graphs.values() for sub in graph.subgraphs
            }
            for sub_change in plan.subgraph_resets:
                sub = subs[(sub_change.graph_id, sub_change.key)]
                sub.status, sub.retries = sub_change.status, sub_change.retries
                sub.next_run_at, sub.error = sub_change.next_run_at, sub_change.error
        return claimed, written

    def claim_when_free(self, execution: ExecutionRecord) -> ExecutionRecord | None:
        """Wait in `queued` until the lock key is free, then claim the execution here.

        Returns None when it left `queued` some other way (cancelled, or claimed first by
        a manager that shares the store).
        """
        while True:
            current = self.store.get_execution(execution.id)
            if current is None:
                return None
            if current.status is E.PENDING:
                claimed = self.store.claim(self.claim(current), [], [])
                if claimed is not None:
                    return claimed
            elif current.status is not E.QUEUED:
                return None
            time.sleep(self.config.poll_interval)

    def await_end(self, execution_id: str) -> Outcome:
        """Someone else runs it (a manager claimed it first): wait for its end state."""
        while True:
            current = self.store.get_execution(execution_id)
            if current is None:
                return Outcome(None, "the execution was deleted")
            if current.status in (E.COMPLETED, E.FAILED, E.CANCELLED):
                return Outcome(current.status, current.error)
            time.sleep(self.config.poll_interval)

    # running ---------------------------------------------------------------------

    def open(
        self,
        record: ExecutionRecord,
        name: str,
        take_up: TakeUp,
        *,
        graphs: dict[str, StoredGraph] | None = None,
        listener: EventListener | None = None,
        crash_hook: CrashHook | None = None,
        pool: WorkerPool | None = None,
    ) -> ExecutionRun:
        """The run of a claimed execution in this process (it holds the lease)."""
        return ExecutionRun(
            self.store,
            record,
            name,
            self.config,
            resume=take_up.resumes,
            listener=listener,
            crash_hook=crash_hook,
            stored_graphs=graphs,
            pool=pool,
        )

    def run(
        self,
        run: ExecutionRun,
        record: ExecutionRecord,
        take_up: TakeUp,
        func: Callable[..., Any],
        definition: WorkflowDefinition,
        taken_over_by: str | None = None,
        cause: str | None = None,
    ) -> Outcome:
        """Carry a take-up out: finish a cancel, fail at once a workflow that cannot
        resume, or run the workflow function (over its stored graphs when it resumes). A
        takeover's event names the new owner and, when known, why the previous one left."""
        if record.status in CANCELLING_STATES:
            return run.finish(E.CANCELLED, None)  # its owner is gone: finish the cancel
        if take_up.resumes and not definition.resumable:
            return run.finish(E.FAILED, not_resumable(record.workflow))
        if taken_over_by is not None:
            run.batch.events.append(
                events.workflow_resumed(definition.name, [], taken_over_by, cause or "")
            )
        return run.run(func, record.params)

    def finish_cancel(
        self,
        execution: ExecutionRecord,
        name: str,
        target: ExecutionState | None = None,
        requested: NewEvent | None = None,
    ) -> ExecutionRecord:
        """Take over an execution whose owner is gone and end it `cancelled` here: one left
        `*cancelling` (`target` None), or one a cancel of `target` mode was just `requested`
        for while nobody runs it."""
        asked = [requested] if requested is not None else []
        claimed = self.store.claim(self.claim(execution, target or execution.status), [], asked)
        if claimed is not None:
            run = self.open(claimed, name, TakeUp.FINISH_CANCEL, graphs={})
            if run.finish(E.CANCELLED, None).status is E.CANCELLED:
                found = self.store.get_execution(execution.id)
                assert found is not None
                return found
        msg = f"execution {execution.id} changed while finishing its cancel; try again"
        raise ConflictError(msg)


def not_resumable(workflow: str) -> str:
    return f"Cannot resume - workflow not resumable: {workflow}"


def by(actor: str | None, event: NewEvent) -> NewEvent:
    """`event`, recorded as asked for by `actor`."""
    event.actor = actor
    return event


def holder_line(execution: ExecutionRecord, holder: str | None) -> Sequence[NewEvent]:
    """What a process that waits for a lock key tells its user."""
    if holder is None or execution.lock_key is None:
        return []
    return [lock_waiting(execution.lock_key, holder, time.time())]
