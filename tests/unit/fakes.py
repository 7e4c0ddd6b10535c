"""An in-memory fake of the store protocol, for the unit ring (as procrastinate's
InMemoryConnector): the guarded claims and batches of `dalsegno.store` over dicts, with
the same rules (state and token guards, lock keys, runs), so the lifecycle's rules are
tested in milliseconds. The integration and acceptance rings prove the real stores.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from typing import Any

from dalsegno.model.errors import LeaseLostError
from dalsegno.model.records import (
    AttemptEnd,
    Batch,
    Claim,
    ExecutionRecord,
    NewEvent,
    StoredGraph,
    TaskChange,
    TaskRecord,
)
from dalsegno.model.states import (
    ACTIVE_STATES,
    EXECUTION_END_STATES,
    ExecutionState,
    can_move_execution,
)

E = ExecutionState
HOLDING = frozenset(ExecutionState) - EXECUTION_END_STATES - {E.QUEUED}


class MemoryStore:
    """The part of the `Store` protocol the lifecycle and a run's writes use."""

    def __init__(self) -> None:
        self.executions: dict[str, ExecutionRecord] = {}
        self.graphs: dict[str, dict[str, StoredGraph]] = {}
        self.events: dict[str, list[NewEvent]] = {}
        self.attempt_ends: list[AttemptEnd] = []
        self._ids = itertools.count(1)

    # set-up helpers of the tests --------------------------------------------------

    def add_execution(self, status: E, **fields: Any) -> ExecutionRecord:
        execution_id = f"x{next(self._ids)}"
        record = ExecutionRecord(
            id=execution_id,
            workflow=fields.pop("workflow", "flows:deploy"),
            status=status,
            params=fields.pop("params", {}),
            error=fields.pop("error", None),
            created_at=time.time(),
            started_at=None,
            ended_at=None,
            lease_owner=fields.pop("lease_owner", None),
            lease_expires_at=fields.pop("lease_expires_at", None),
            lease_token=fields.pop("lease_token", 1),
            **fields,
        )
        self.executions[execution_id] = record
        self.events[execution_id] = []
        return record

    def add_graph(self, execution_id: str, states: dict[str, Any], name: str = "main") -> None:
        tasks = [
            TaskRecord(
                id=next(self._ids),
                execution_id=execution_id,
                graph=name,
                key=key,
                operation=f"ops:{key}",
                agent=None,
                kwargs_json="{}",
                max_retries=2,
                retry_interval=1.0,
                timeout=None,
                status=state,
                retries=1 if state.value == "rescheduled" else 0,
                error="boom" if state.value == "failed" else None,
                result_json=None,
                attempts=0 if state.value == "pending" else 1,
                next_run_at=None,
                started_at=None,
                ended_at=None,
            )
            for key, state in states.items()
        ]
        self.graphs.setdefault(execution_id, {})[name] = StoredGraph(
            next(self._ids), name, tasks, []
        )

    def task(self, execution_id: str, key: str) -> TaskRecord:
        return next(t for g in self.graphs[execution_id].values() for t in g.tasks if t.key == key)

    # the protocol ---------------------------------------------------------------------

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        found = self.executions.get(execution_id)
        return None if found is None else dataclasses.replace(found)

    def load_graphs(self, execution_id: str) -> dict[str, StoredGraph]:
        return {
            name: StoredGraph(graph.id, name, [dataclasses.replace(t) for t in graph.tasks], [])
            for name, graph in self.graphs.get(execution_id, {}).items()
        }

    def list_tasks(self, execution_id: str) -> list[TaskRecord]:
        return [t for g in self.load_graphs(execution_id).values() for t in g.tasks]

    def lock_holder(self, lock_key: str, other_than: str | None = None) -> str | None:
        for record in self.executions.values():
            if record.lock_key == lock_key and record.status in HOLDING and record.id != other_than:
                return record.id
        return None

    def claim(
        self,
        claim: Claim,
        resets: Sequence[TaskChange],
        events: Sequence[NewEvent],
        attempt_ends: Sequence[AttemptEnd] = (),
        subgraph_resets: Sequence[Any] = (),
    ) -> ExecutionRecord | None:
        record = self.executions[claim.execution_id]
        takeover = claim.status is claim.expected_status and claim.status in ACTIVE_STATES
        assert takeover or can_move_execution(claim.expected_status, claim.status)
        if record.status is not claim.expected_status or record.lease_token != claim.expected_token:
            return None
        status, written = claim.status, list(events)
        if claim.honour_lock and record.lock_key is not None:
            holder = self.lock_holder(record.lock_key, record.id)
            if holder is not None:
                status = E.QUEUED
                written.append(NewEvent("lock_waiting", f"held by execution {holder}"))
        owner = claim.owner if status is not E.QUEUED else None
        record.status, record.lease_owner = status, owner
        record.lease_expires_at = claim.lease_expires_at if owner else None
        record.lease_token += 1
        record.error = record.ended_at = None
        if status is E.STARTED and owner is not None:
            record.runs += 1
            record.started_at = time.time()
            record.first_started_at = record.first_started_at or record.started_at
        if status is not E.STARTED:
            record.take_up = claim.take_up
        self._apply_tasks(claim.execution_id, resets)
        self.attempt_ends.extend(attempt_ends)
        self.events[claim.execution_id].extend(written)
        return self.get_execution(claim.execution_id)

    def apply(self, batch: Batch) -> ExecutionState:
        record = self.executions[batch.execution_id]
        if record.lease_token != batch.lease_token:
            raise LeaseLostError("another owner holds the lease")
        self._apply_tasks(batch.execution_id, [*batch.tasks, *batch.starts])
        self.events[batch.execution_id].extend([*batch.events, *batch.start_events])
        change = batch.execution
        if change is not None and record.status in change.expected:
            record.status, record.error = change.status, change.error
            if change.release_lease:
                record.lease_owner, record.lease_expires_at = None, None
            if change.status in EXECUTION_END_STATES:
                record.ended_at = time.time()
        return record.status

    def read_status(self, execution_id: str) -> tuple[ExecutionState, int] | None:
        record = self.executions.get(execution_id)
        return None if record is None else (record.status, record.lease_token)

    def renew_lease(self, execution_id: str, lease_token: int, lease_expires_at: float) -> bool:
        record = self.executions[execution_id]
        if record.lease_token != lease_token:
            return False
        record.lease_expires_at = lease_expires_at
        return True

    def notify(self, channel: str) -> None:
        _ = channel

    def wait_for_notification(self, channels: Sequence[str], timeout: float) -> set[str]:
        _ = channels
        time.sleep(min(timeout, 0.01))
        return set()

    def _apply_tasks(self, execution_id: str, changes: Sequence[TaskChange]) -> None:
        by_id = {t.id: t for g in self.graphs.get(execution_id, {}).values() for t in g.tasks}
        for change in changes:
            task = by_id[change.task_id]
            if task.status is not change.expected:
                continue  # a guarded update that lost its race changes nothing
            task.status, task.retries, task.error = change.status, change.retries, change.error
            task.attempts, task.result_json = change.attempts, change.result_json
            task.next_run_at = change.next_run_at
