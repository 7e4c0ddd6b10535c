"""The `Store` protocol: everything dalsegno keeps, behind one interface per backend.

Only this package talks to a database. The records it reads and writes are plain data of
`dalsegno.model.records` (re-exported here for the store's own modules); the engine sees
those and this protocol, never a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dalsegno.model.records import (
    AttemptEnd,
    AttemptRecord,
    AttemptStart,
    Batch,
    Claim,
    EventRecord,
    ExecutionChange,
    ExecutionRecord,
    ExecutionSettings,
    LeaseOwner,
    NewEvent,
    NewTask,
    StoredGraph,
    SubgraphChange,
    SubgraphRecord,
    TaskChange,
    TaskRecord,
)
from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.store.access_records import AccessStore
from dalsegno.store.agent_records import AgentQueueStore
from dalsegno.store.deployment_records import DeploymentStore
from dalsegno.store.housekeeping import Removed

__all__ = [
    "AttemptEnd",
    "AttemptRecord",
    "AttemptStart",
    "Batch",
    "Claim",
    "EventRecord",
    "ExecutionChange",
    "ExecutionRecord",
    "LeaseOwner",
    "NewEvent",
    "NewTask",
    "Store",
    "StoredGraph",
    "SubgraphChange",
    "SubgraphRecord",
    "TaskChange",
    "TaskRecord",
]


class Store(AgentQueueStore, AccessStore, DeploymentStore, Protocol):
    """Everything dalsegno keeps, behind one interface per backend."""

    url: str

    def close(self) -> None: ...

    # a store that cannot be used any more (its file deleted or corrupt): why, else None
    def failure(self) -> str | None: ...

    # wake-ups: across processes on PostgreSQL (LISTEN/NOTIFY), within one on SQLite
    def notify(self, channel: str) -> None: ...

    def wait_for_notification(self, channels: Sequence[str], timeout: float) -> set[str]: ...

    # executions
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
    ) -> ExecutionRecord: ...

    def get_execution(self, execution_id: str) -> ExecutionRecord | None: ...

    def find_execution_ids(self, prefix: str) -> list[str]: ...

    def list_executions(
        self, status: ExecutionState | None = None, brief: bool = False
    ) -> list[ExecutionRecord]: ...

    def claim(
        self,
        claim: Claim,
        resets: Sequence[TaskChange],
        events: Sequence[NewEvent],
        attempt_ends: Sequence[AttemptEnd] = (),
        subgraph_resets: Sequence[SubgraphChange] = (),
    ) -> ExecutionRecord | None: ...

    def claim_pending(
        self, owner: LeaseOwner, lease_expires_at: float, limit: int
    ) -> list[ExecutionRecord]: ...

    def list_stale(self, now: float, host: str, limit: int) -> list[ExecutionRecord]: ...

    def next_lease_expiry(self, owner: LeaseOwner) -> float | None: ...

    def release(self, execution_id: str, lease_token: int) -> bool: ...

    def lock_holder(self, lock_key: str, other_than: str | None = None) -> str | None: ...

    def request_cancel(
        self, execution_id: str, target: ExecutionState, events: Sequence[NewEvent]
    ) -> ExecutionRecord | None: ...

    def read_status(self, execution_id: str) -> tuple[ExecutionState, int] | None: ...

    def renew_lease(self, execution_id: str, lease_token: int, lease_expires_at: float) -> bool: ...

    # graphs and tasks
    def store_graph(
        self,
        execution_id: str,
        lease_token: int,
        name: str,
        tasks: Sequence[NewTask],
        edges: Sequence[tuple[str, str]],
        events: Sequence[NewEvent],
        before_commit: Callable[[], None] | None = None,
        *,
        subgraphs: Sequence[SubgraphRecord] = (),
        node_edges: Sequence[tuple[str, str]] = (),
    ) -> StoredGraph: ...

    def load_graphs(self, execution_id: str) -> dict[str, StoredGraph]: ...

    def list_subgraphs(self, execution_id: str) -> list[tuple[str, SubgraphRecord]]: ...

    def list_tasks(self, execution_id: str) -> list[TaskRecord]: ...

    def list_attempts(self, execution_id: str) -> list[AttemptRecord]: ...

    def count_tasks_by_status(self, execution_id: str) -> dict[str, int]: ...

    # writes of a running execution
    def apply(self, batch: Batch) -> ExecutionState: ...

    def record_late_result(self, end: AttemptEnd, events: Sequence[NewEvent]) -> None: ...

    # events
    def list_events(
        self, execution_id: str, after: str | None = None, limit: int | None = None
    ) -> list[EventRecord]: ...

    # reads for the web UI (dalsegno.store.reads)
    def task_progress(self, execution_ids: Sequence[str]) -> dict[str, tuple[int, int]]: ...

    def list_workflows(self) -> list[str]: ...

    def count_executions_by_status(self) -> dict[str, int]: ...

    def load_graph_outlines(self, execution_id: str) -> dict[str, StoredGraph]: ...

    # paged lists (dalsegno.store.pages)
    def page_executions(
        self,
        *,
        statuses: Sequence[ExecutionState] = (),
        workflow: str | None = None,
        since: float | None = None,
        search: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 100,
        deployment: str | None = None,
    ) -> list[ExecutionRecord]: ...

    def page_tasks(
        self,
        execution_id: str,
        *,
        graph: str | None = None,
        statuses: Sequence[TaskState] = (),
        key_contains: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[TaskRecord]: ...

    def count_matching_tasks(
        self,
        execution_id: str,
        *,
        graph: str | None = None,
        statuses: Sequence[TaskState] = (),
        key_contains: str | None = None,
    ) -> int: ...

    def find_tasks_by_key(
        self, execution_id: str, key: str, graph: str | None = None
    ) -> list[TaskRecord]: ...

    def page_events(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int = 1000,
        graph: str | None = None,
        task_key: str | None = None,
        level: str | None = None,
        types: Sequence[str] = (),
    ) -> list[EventRecord]: ...

    def agent_queues(self) -> dict[str, dict[str, int]]: ...

    # deleting ended executions (dalsegno.store.housekeeping)
    def mark_deleting(self, execution_id: str) -> bool: ...

    def remove_marked(self, execution_id: str, batch: int = 500) -> Removed: ...

    def purge_candidates(
        self,
        statuses: Sequence[ExecutionState],
        before: float,
        keep_last: int,
        limit: int,
    ) -> list[str]: ...

    def schema_revision(self) -> str | None: ...

    def get_task(self, execution_id: str, task_id: int) -> TaskRecord | None: ...

    def list_task_attempts(self, task_id: int) -> list[AttemptRecord]: ...

    def list_task_events(
        self, execution_id: str, graph: str, task_key: str, limit: int = 500
    ) -> list[EventRecord]: ...

    def list_last_events(self, execution_id: str, limit: int) -> list[EventRecord]: ...
