"""Test your own workflows: a temporary SQLite store, and crashes you can aim.

    from dalsegno.testing import WorkflowHarness

    def test_deploy_survives_a_crash():
        with WorkflowHarness() as harness:
            crashed = harness.run_until_crash(deploy, at="before_operation", task="vm1", hosts=2)
            assert crashed.status == "started"          # as a killed process leaves it
            resumed = harness.resume(crashed.id)
            assert resumed.status == "completed"
            assert resumed.task("vm0").status == "succeeded"

A simulated crash stops the run at the point named, writing nothing more, exactly as a
killed process would; its lease is then left to expire (`lease_timeout`, half a second by
default) before a resume may take the execution over. Points: `graph_storing`,
`before_operation`, `after_operation` (the function returned, its success not yet
stored) and `before_finish`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dalsegno.service import EngineConfig, open_service_with, reference_of

CRASH_POINTS = (
    "graph_storing",
    "before_operation",
    "after_operation",
    "before_finish",
    "subgraph_reset",  # a subgraph's reset and retry count built, not committed
    "subgraph_retry_wait",  # committed: the subgraph waits for its retry
)


@dataclass(frozen=True, slots=True)
class TaskView:
    graph: str
    key: str
    operation: str
    status: str
    retries: int
    result: Any
    error: str | None


@dataclass(frozen=True, slots=True)
class ExecutionView:
    """An execution as the store holds it, with its tasks and event messages."""

    id: str
    status: str
    error: str | None
    tasks: dict[tuple[str, str], TaskView] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def task(self, key: str, graph: str = "main") -> TaskView:
        return self.tasks[(graph, key)]

    @property
    def statuses(self) -> dict[str, str]:
        """Task key -> state, for the tasks of every graph (`graph/key` outside `main`)."""
        return {
            (key if graph == "main" else f"{graph}/{key}"): task.status
            for (graph, key), task in self.tasks.items()
        }


class WorkflowHarness:
    """Runs workflows in this process on a temporary (or given) SQLite file."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        concurrency: int = 4,
        lease_timeout: float = 0.5,
        retry_interval: float = 0.0,
    ) -> None:
        self._tempdir = None if path is not None else tempfile.mkdtemp(prefix="dalsegno-test-")
        self.path = Path(path) if path is not None else Path(self._tempdir or ".") / "test.db"
        self.service = open_service_with(
            f"sqlite:///{self.path}",
            EngineConfig(
                concurrency=concurrency,
                lease_timeout=lease_timeout,
                poll_interval=min(0.05, lease_timeout / 4),
                default_retry_interval=retry_interval,
            ),
        )
        self.store = self.service.store

    def __enter__(self) -> WorkflowHarness:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def run(self, workflow: Callable[..., Any] | str, /, **params: Any) -> ExecutionView:
        """Run a workflow to its end; returns the execution as stored."""
        result = self.service.start(_reference(workflow), params)
        return self.execution(result.execution_id)

    def run_until_crash(
        self,
        workflow: Callable[..., Any] | str,
        /,
        *,
        at: str = "before_operation",
        task: str | None = None,
        **params: Any,
    ) -> ExecutionView:
        """Run a workflow and stop it as a crash would at `at` (for `task`, if named)."""
        result = self.service.start(_reference(workflow), params, crash_hook=_aim(at, task))
        if not result.outcome.abandoned:
            msg = f"the run ended {result.status} before reaching the crash point {at} {task or ''}"
            raise AssertionError(msg)
        return self.execution(result.execution_id)

    def resume(
        self,
        execution_id: str,
        *,
        reset_operations: bool = False,
        crash_at: str | None = None,
        crash_task: str | None = None,
    ) -> ExecutionView:
        """Resume as an operator would; waits first for a crashed run's lease to expire."""
        self._wait_for_lease(execution_id)
        hook = _aim(crash_at, crash_task) if crash_at else None
        result = self.service.resume(execution_id, reset_operations, crash_hook=hook)
        return self.execution(result.execution_id)

    def cancel(self, execution_id: str, mode: str = "cancel") -> ExecutionView:
        self.service.cancel(execution_id, mode)
        return self.execution(execution_id)

    def execution(self, execution_id: str) -> ExecutionView:
        record, tasks = self.service.get(execution_id)
        return ExecutionView(
            id=record.id,
            status=record.status.value,
            error=record.error,
            tasks={
                (task.graph, task.key): TaskView(
                    task.graph,
                    task.key,
                    task.operation,
                    task.status.value,
                    task.retries,
                    task.result,
                    task.error,
                )
                for task in tasks
            },
            events=[event.message for event in self.service.events(record.id)],
        )

    def _wait_for_lease(self, execution_id: str) -> None:
        record = self.service.find(execution_id)
        if record.lease_expires_at is not None and record.status.value not in (
            "failed",
            "cancelled",
            "completed",
        ):
            time.sleep(max(0.0, record.lease_expires_at - time.time()) + 0.01)


def _reference(workflow: Callable[..., Any] | str) -> str:
    return workflow if isinstance(workflow, str) else reference_of(workflow)


def _aim(at: str | None, task: str | None) -> Callable[[str, str, str], bool]:
    if at not in CRASH_POINTS:
        msg = f"unknown crash point {at!r}: use one of {', '.join(CRASH_POINTS)}"
        raise ValueError(msg)

    def hook(point: str, _graph: str, key: str) -> bool:
        return point == at and (task is None or key == task)

    return hook


__all__ = ["CRASH_POINTS", "ExecutionView", "TaskView", "WorkflowHarness"]
