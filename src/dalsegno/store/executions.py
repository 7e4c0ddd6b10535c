"""Executions: create, read, list, and a cancel asked from outside the owner; their events.

A cancel request holds no lease: it moves the execution to a `*cancelling` state guarded
by the state alone, and the owner carries it out (docs/design.md section 2).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from dalsegno.model.errors import RefusedTransitionError
from dalsegno.model.records import (
    EventRecord,
    ExecutionRecord,
    ExecutionSettings,
    LeaseOwner,
    NewEvent,
)
from dalsegno.model.states import (
    CANCELLING_STATES,
    UNOWNED_CANCEL_SOURCES,
    ExecutionState,
    TakeUp,
    execution_sources,
)
from dalsegno.store import tables as t
from dalsegno.store.locks import LockKeys, serialise_key_of
from dalsegno.store.retry import retried
from dalsegno.store.statements import brief_executions, clock, execution_of


class Executions(LockKeys):
    """The queries of executions as a whole."""

    def create_execution(
        self,
        workflow: str,
        params: dict[str, Any],
        status: ExecutionState,
        owner: LeaseOwner | None,
        lease_expires_at: float | None,
        events: Sequence[NewEvent],
        lock_key: str | None = None,
        settings: ExecutionSettings | None = None,
    ) -> ExecutionRecord:
        """Insert an execution; with a lock key another execution holds, it is `queued`.

        A queued execution has no owner yet: it becomes `pending` when the holder ends.
        The insert rides out an outage; its id is chosen here, so an insert whose COMMIT
        went through unanswered is found, not made twice.
        """
        execution_id = uuid.uuid4().hex
        self._insert_execution(
            execution_id,
            workflow,
            params,
            status,
            owner,
            lease_expires_at,
            events,
            lock_key,
            settings or ExecutionSettings(),
        )
        record = self.get_execution(execution_id)
        assert record is not None
        return record

    @retried("creating execution {execution_id}", recover=lambda *_: None)
    def _insert_execution(
        self,
        execution_id: str,
        workflow: str,
        params: dict[str, Any],
        status: ExecutionState,
        owner: LeaseOwner | None,
        lease_expires_at: float | None,
        events: Sequence[NewEvent],
        lock_key: str | None,
        settings: ExecutionSettings,
    ) -> None:
        now = clock()
        row = {
            "id": execution_id,
            "workflow": workflow,
            "params": json.dumps(params),
            "status": status.value,
            "created_at": now,
            "started_at": now if status is ExecutionState.STARTED else None,
            "lease_host": owner.host if owner else None,
            "lease_pid": owner.pid if owner else None,
            "lease_proc_start": owner.proc_start if owner else None,
            "lease_expires_at": lease_expires_at,
            "lease_token": 1 if owner else 0,
            "lock_key": lock_key,
            "runs": 1 if status is ExecutionState.STARTED else 0,
            "first_started_at": now if status is ExecutionState.STARTED else None,
            "take_up": None if status is ExecutionState.STARTED else TakeUp.START.value,
            "dry_run": 1 if settings.dry_run else 0,
            "task_retries": settings.task_retries,
            "task_retry_interval": settings.task_retry_interval,
            "deployment_id": settings.deployment_id,
        }
        with self._write() as conn:
            if lock_key is not None and self._lock_held(conn, lock_key):
                row.update(
                    status=ExecutionState.QUEUED.value,
                    started_at=None,
                    lease_host=None,
                    lease_pid=None,
                    lease_proc_start=None,
                    lease_expires_at=None,
                    lease_token=0,
                    runs=0,
                    first_started_at=None,
                    take_up=TakeUp.START.value,
                )
                queued = NewEvent(
                    "lock_waiting", f"Queued: lock '{lock_key}' is held", created_at=clock()
                )
                events = [*events, queued]
            conn.execute(insert(t.executions), row)
            self._insert_events(conn, execution_id, events)

    @retried("execution {execution_id}: reading it")
    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.executions).where(
                    t.executions.c.id == execution_id,
                    t.executions.c.deleting_at.is_(None),  # being deleted: gone
                )
            ).first()
        return None if row is None else execution_of(row)

    def find_execution_ids(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._read() as conn:
            rows = conn.execute(
                select(t.executions.c.id)
                .where(
                    t.executions.c.id.like(escaped + "%", escape="\\"),
                    t.executions.c.deleting_at.is_(None),
                )
                .limit(2)
            ).all()
        return [row.id for row in rows]

    def list_executions(
        self, status: ExecutionState | None = None, brief: bool = False
    ) -> list[ExecutionRecord]:
        """Executions newest first; `brief` ones as list views show them (`brief_executions`)."""
        query = (
            (brief_executions() if brief else select(t.executions))
            .where(t.executions.c.deleting_at.is_(None))
            .order_by(t.executions.c.created_at.desc(), t.executions.c.id.desc())
        )
        if status is not None:
            query = query.where(t.executions.c.status == status.value)
        with self._read() as conn:
            return [execution_of(row) for row in conn.execute(query)]

    def request_cancel(
        self, execution_id: str, target: ExecutionState, events: Sequence[NewEvent]
    ) -> ExecutionRecord | None:
        """Move to a `*cancelling` state, guarded by the state alone: the owner carries it out.

        Without a lease, the only end state reachable is `cancelled` of an execution nobody
        runs yet (`pending`, `queued`); a `*cancelling` one is finished by its owner.
        """
        if target in CANCELLING_STATES:
            allowed = execution_sources(target)
        elif target is ExecutionState.CANCELLED:
            allowed = UNOWNED_CANCEL_SOURCES
        else:
            msg = f"a cancel request cannot move an execution to {target}"
            raise RefusedTransitionError(msg)
        sources = [state.value for state in allowed]
        with self._write() as conn:
            if target is ExecutionState.CANCELLED:
                serialise_key_of(conn, execution_id)
            # On PostgreSQL an agent's claim reads the execution's row `FOR KEY SHARE` (the
            # owner's lease renewals do not wait for it): this lock waits for the claims
            # under way, and the claims that come after see the cancel (store/agent_pgexchange.py)
            conn.execute(
                select(t.executions.c.id).where(t.executions.c.id == execution_id).with_for_update()
            )
            moved = conn.execute(
                update(t.executions)
                .where(t.executions.c.id == execution_id, t.executions.c.status.in_(sources))
                .values(status=target.value)
            ).rowcount
            if moved != 1:  # nothing was written: nothing to roll back
                return None
            self._insert_events(conn, execution_id, events)
            if target is ExecutionState.CANCELLED:
                self._promote_queued(conn, execution_id)
        return self.get_execution(execution_id)

    @retried("execution {execution_id}: reading its state")
    def read_status(self, execution_id: str) -> tuple[ExecutionState, int] | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.executions.c.status, t.executions.c.lease_token).where(
                    t.executions.c.id == execution_id
                )
            ).first()
        return None if row is None else (ExecutionState(row.status), row.lease_token)

    def list_events(
        self, execution_id: str, after: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        query = select(t.events).where(t.events.c.execution_id == execution_id)
        if after is not None:
            query = query.where(t.events.c.id > int(after))
        query = query.order_by(t.events.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [
                EventRecord(
                    id=str(row.id),
                    execution_id=row.execution_id,
                    graph=row.graph,
                    task_key=row.task_key,
                    type=row.type,
                    level=row.level,
                    message=row.message,
                    created_at=row.created_at,
                    actor=row.actor,
                )
                for row in conn.execute(query)
            ]
