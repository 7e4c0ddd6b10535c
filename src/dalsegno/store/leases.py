"""Leases: who runs an execution. A claim takes the lease from the state and token last
seen, and the token grows by one, so every later write of a previous owner is refused
(fencing). Pending executions are claimed oldest first; expired leases are listed for a
takeover; a graceful stop releases its leases at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update

from dalsegno.model.errors import RefusedTransitionError
from dalsegno.model.records import (
    AttemptEnd,
    Claim,
    ExecutionRecord,
    LeaseOwner,
    NewEvent,
    SubgraphChange,
    TaskChange,
    lock_waiting,
)
from dalsegno.model.states import ACTIVE_STATES, ExecutionState, can_move_execution
from dalsegno.store import tables as t
from dalsegno.store.executions import Executions
from dalsegno.store.retry import retried
from dalsegno.store.statements import clock, execution_of


def _claimed(store: Leases, claim: Claim, *_writes: Sequence[object]) -> ExecutionRecord | None:
    """What `claim` returned, read back after its COMMIT went through unanswered."""
    record = store.get_execution(claim.execution_id)
    if record is None or record.lease_token != claim.expected_token + 1:
        return None
    return record if record.lease_owner == claim.owner else None


def _claimed_pending(
    store: Leases, owner: LeaseOwner, lease_expires_at: float, _limit: int
) -> list[ExecutionRecord]:
    """What `claim_pending` returned, read back after its COMMIT went through unanswered."""
    return [
        record
        for record in store.list_executions(ExecutionState.STARTED)
        if record.lease_owner == owner and record.lease_expires_at == lease_expires_at
    ]


def _lease_values(owner: LeaseOwner | None, lease_expires_at: float | None) -> dict[str, Any]:
    """The columns of a new lease (none, with no owner); the token grows by one."""
    return {
        "lease_host": owner.host if owner else None,
        "lease_pid": owner.pid if owner else None,
        "lease_proc_start": owner.proc_start if owner else None,
        "lease_expires_at": lease_expires_at if owner else None,
        "lease_token": t.executions.c.lease_token + 1,
    }


def _run_values(now: float) -> dict[str, Any]:
    """The columns of one more run (`runs: 2`); its first start stays, and so does the
    start of its last run on a takeover (the run goes on under a new owner)."""
    return {
        "first_started_at": func.coalesce(t.executions.c.first_started_at, now),
        "runs": t.executions.c.runs + 1,
    }


class Leases(Executions):
    """The queries of leases: claims, takeovers, renewals, releases."""

    @retried("execution {claim.execution_id}: claiming", recover=_claimed)
    def claim(
        self,
        claim: Claim,
        resets: Sequence[TaskChange],
        events: Sequence[NewEvent],
        attempt_ends: Sequence[AttemptEnd] = (),
        subgraph_resets: Sequence[SubgraphChange] = (),
    ) -> ExecutionRecord | None:
        """Take the lease from the state and token last seen, with the resets of a resume.

        The token grows by one, so every later write of a previous owner is refused.
        """
        takeover = claim.status is claim.expected_status and claim.status in ACTIVE_STATES
        if not takeover and not can_move_execution(claim.expected_status, claim.status):
            msg = f"a claim cannot move an execution from {claim.expected_status} to {claim.status}"
            raise RefusedTransitionError(msg)
        now = clock()
        values = _lease_values(claim.owner, claim.lease_expires_at)
        values.update(error=None, ended_at=None)
        guard: tuple[Any, ...] = (
            t.executions.c.id == claim.execution_id,
            t.executions.c.status == claim.expected_status.value,
            t.executions.c.lease_token == claim.expected_token,
        )
        if takeover:  # managers racing for one stale lease: the losers skip it at once
            locked = select(t.executions.c.id).where(*guard).with_for_update(skip_locked=True)
            guard = (t.executions.c.id.in_(locked.scalar_subquery()),)
        with self._write() as conn:
            status, events = claim.status, list(events)
            if claim.honour_lock:
                holder = self._holder_of_key(conn, claim.execution_id)
                if holder is not None:  # it waits in `queued`, like a new execution
                    status = ExecutionState.QUEUED
                    values.update(_lease_values(None, None))
                    events.append(holder)
            values["status"] = status.value
            if status is ExecutionState.STARTED and claim.owner is not None:
                values.update(_run_values(now))  # one more run (a takeover too)
                if not takeover:
                    values["started_at"] = now
            if status is not ExecutionState.STARTED:  # whoever claims it next reads it
                values["take_up"] = claim.take_up
            claimed = conn.execute(update(t.executions).where(*guard).values(values)).rowcount
            if claimed != 1:  # nothing was written: nothing to roll back
                return None
            self._apply_task_changes(conn, claim.execution_id, resets)
            if subgraph_resets:
                self._apply_subgraph_changes(conn, subgraph_resets)
            self._end_attempts(conn, attempt_ends)
            self._insert_events(conn, claim.execution_id, events)
        return self.get_execution(claim.execution_id)

    def _holder_of_key(self, conn: Connection, execution_id: str) -> NewEvent | None:
        """The event saying which execution holds the lock key of `execution_id`, if any."""
        lock_key = conn.execute(
            select(t.executions.c.lock_key).where(t.executions.c.id == execution_id)
        ).scalar()
        if lock_key is None:
            return None
        holder = self._lock_holder(conn, lock_key, other_than=execution_id)
        if holder is None:
            return None
        return lock_waiting(lock_key, holder, clock())

    @retried("claiming pending executions", recover=_claimed_pending)
    def claim_pending(
        self, owner: LeaseOwner, lease_expires_at: float, limit: int
    ) -> list[ExecutionRecord]:
        """Take up to `limit` pending executions, oldest first, each with its lease."""
        if limit <= 0:
            return []
        claimed: list[str] = []
        with self._write() as conn:
            candidates = conn.execute(
                select(t.executions.c.id)
                .where(t.executions.c.status == ExecutionState.PENDING.value)
                .order_by(t.executions.c.created_at, t.executions.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # nothing on SQLite: its writer is alone
            ).scalars()
            now = clock()
            for execution_id in list(candidates):
                moved = conn.execute(
                    update(t.executions)
                    .where(
                        t.executions.c.id == execution_id,
                        t.executions.c.status == ExecutionState.PENDING.value,
                    )
                    .values(
                        status=ExecutionState.STARTED.value,
                        **_lease_values(owner, lease_expires_at),
                        **_run_values(now),
                        started_at=func.coalesce(t.executions.c.started_at, now),
                        error=None,
                        ended_at=None,
                    )
                ).rowcount
                if moved == 1:
                    claimed.append(execution_id)
        found = [self.get_execution(execution_id) for execution_id in claimed]
        return [record for record in found if record is not None]

    def list_stale(self, now: float, host: str, limit: int) -> list[ExecutionRecord]:
        """Running executions whose lease expired, or is held by a process of `host`.

        The caller decides whether a local owner is dead; the claim itself is guarded by
        the state and token read here, so two managers never take one over twice.
        """
        active = [state.value for state in ACTIVE_STATES]
        query = (
            select(t.executions)
            .where(
                t.executions.c.status.in_(active),
                (t.executions.c.lease_expires_at < now)
                | t.executions.c.lease_expires_at.is_(None)
                | (t.executions.c.lease_host == host),
            )
            .order_by(t.executions.c.created_at)
            .limit(limit)
        )
        with self._read() as conn:
            return [execution_of(row) for row in conn.execute(query)]

    def next_lease_expiry(self, owner: LeaseOwner) -> float | None:
        """When the first lease held by another owner expires (a manager waits until then)."""
        active = [state.value for state in ACTIVE_STATES]
        with self._read() as conn:
            found = conn.execute(
                select(func.min(t.executions.c.lease_expires_at)).where(
                    t.executions.c.status.in_(active),
                    ~(
                        (t.executions.c.lease_host == owner.host)
                        & (t.executions.c.lease_pid == owner.pid)
                    ),
                )
            ).scalar()
        return None if found is None else float(found)

    @retried("execution {execution_id}: releasing the lease")
    def release(self, execution_id: str, lease_token: int) -> bool:
        """Give the lease up at once (a graceful stop): the next manager takes over."""
        with self._write() as conn:
            return (
                conn.execute(
                    update(t.executions)
                    .where(
                        t.executions.c.id == execution_id,
                        t.executions.c.lease_token == lease_token,
                    )
                    .values(
                        lease_host=None,
                        lease_pid=None,
                        lease_proc_start=None,
                        lease_expires_at=None,
                    )
                ).rowcount
                == 1
            )

    @retried("execution {execution_id}: renewing the lease")
    def renew_lease(self, execution_id: str, lease_token: int, lease_expires_at: float) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    update(t.executions)
                    .where(
                        t.executions.c.id == execution_id,
                        t.executions.c.lease_token == lease_token,
                        t.executions.c.lease_host.is_not(None),
                    )
                    .values(lease_expires_at=lease_expires_at)
                ).rowcount
                == 1
            )
