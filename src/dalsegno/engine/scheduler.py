"""Runs one stored graph: ready-set scheduling in O(tasks + edges), retries, timeouts,
cancel; each task is placed by its stored state with `dalsegno.engine.fates.placement`.

One thread (the one running the workflow function) owns every decision and every write;
worker threads only run operations and hand back a `Completion`.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dalsegno.engine import events
from dalsegno.engine.agents import AgentTasks
from dalsegno.engine.attempts import Completion, change_of
from dalsegno.engine.fates import (
    Action,
    Resumability,
    operation_resumability,
    placement,
    served_resumability,
    simulated,
    where_it_runs,
)
from dalsegno.engine.outcomes import ExecutionAbandoned, ExecutionCancelled, GraphFailed
from dalsegno.engine.subgraphs import Groups, purge
from dalsegno.model.blueprints import InstanceBinding
from dalsegno.model.graph import expand
from dalsegno.model.limits import clip
from dalsegno.model.records import (
    AttemptEnd,
    AttemptStart,
    InstanceChange,
    StoredGraph,
    TaskRecord,
)
from dalsegno.model.states import CancelMode, ExecutionState, TaskState

if TYPE_CHECKING:
    from dalsegno.engine.runner import ExecutionRun

S = TaskState
log = logging.getLogger("dalsegno.engine")
# A task's state before a start the store may refuse: status, attempts, started, ended, due.
_Before = tuple[TaskState, int, float | None, float | None, float | None]


class GraphRun:
    """The scheduler of one graph of a running execution."""

    def __init__(self, run: ExecutionRun, stored: StoredGraph) -> None:
        self.run = run
        self.name = stored.name
        self.tasks: dict[int, TaskRecord] = {task.id: task for task in stored.tasks}
        self.by_key: dict[str, TaskRecord] = {task.key: task for task in stored.tasks}
        self._dependents: dict[int, list[int]] = {}
        self._waiting: dict[int, int] = {}  # dependencies not yet succeeded, when any
        edges = stored.edges
        if stored.subgraphs:
            edges = edges + self._expanded(stored)
        for task_id, dependency in edges:
            self._dependents.setdefault(dependency, []).append(task_id)
            if self.tasks[dependency].status is not S.SUCCEEDED:
                self._waiting[task_id] = self._waiting.get(task_id, 0) + 1
        self._ready: deque[tuple[int, bool]] = deque()  # (task id, ctx.resume)
        self._timers: list[tuple[float, int]] = []  # (monotonic due time, task id)
        self._deadlines: list[tuple[float, int, int]] = []  # (monotonic, task id, attempt)
        self._running: dict[int, int] = {}  # task id -> attempt number
        self.awaited: set[int] = set()  # agent tasks sent to a queue
        self._failed: list[int] = []
        self.resumability: Resumability = simulated if run.dry_run else operation_resumability
        # a lifecycle task's operation came from a blueprint: the manager's allow-list's
        self.bound_resumability: Resumability = (
            simulated if run.dry_run else served_resumability(run.config.workflows)
        )
        self.agents = AgentTasks(self, run)
        self.failed_subgraphs: list[str] = []
        self._released: set[int] = set()  # failed tasks whose policy let dependents run
        self.groups = Groups(self, stored) if stored.subgraphs else None

    # set-up ------------------------------------------------------------------------

    def _expanded(self, stored: StoredGraph) -> list[tuple[int, int]]:
        """The task edges that the edges with a subgraph on a side stand for."""
        ids = self.by_key
        by_id = {task.id: task.key for task in stored.tasks}
        added = expand(
            {task.key: task.subgraph for task in stored.tasks},
            {sub.key: sub.parent for sub in stored.subgraphs},
            stored.node_edges,
            [(by_id[a], by_id[b]) for a, b in stored.edges],
        )
        return [(ids[a].id, ids[b].id) for a, b in added]

    def _take_up(self) -> None:
        """Place every task by its stored state (`dalsegno.engine.fates.placement`)."""
        now_wall, now_mono = time.time(), time.monotonic()
        failed: list[int] = []  # handled once every task is placed
        for task in self.tasks.values():
            status = task.status
            if status is S.SUCCEEDED:
                continue
            agent = where_it_runs(task.agent, self.run.dry_run)
            placed = placement(status, task.key, task.operation, agent, self.resumable(task))
            action = placed.action
            if action is Action.FAILED:
                failed.append(task.id)
            elif action is Action.AWAITED:
                self.awaited.add(task.id)
            elif status is S.RESCHEDULED:  # keeps its retry count and its due time
                due = now_mono + max(0.0, (task.next_run_at or now_wall) - now_wall)
                heapq.heappush(self._timers, (due, task.id))
            elif action is Action.RUN:
                held = self.groups is not None and self.groups.held(task.subgraph)
                if task.id not in self._waiting and not held:  # a retry due queues it
                    self._ready.append((task.id, False))
            elif self._interrupted(task, action is Action.RERUN, placed.reason, now_wall):
                failed.append(task.id)  # a manager-side operation interrupted while it ran
        for task_id in failed:
            self._terminal(task_id)
        if self.groups is not None:
            self.groups.take_up(now_wall, now_mono)

    def _interrupted(self, task: TaskRecord, rerun: bool, reason: str, now: float) -> bool:
        """A manager-side task found `started`: its attempt ended; re-run it or fail it."""
        batch = self.run.batch
        if task.attempts:
            batch.attempt_ends.append(
                AttemptEnd(task.id, task.attempts - 1, "interrupted", now, None)
            )
        if rerun:
            self._ready.append((task.id, True))
            return False
        task.status, task.error, task.ended_at = S.FAILED, reason, now
        batch.tasks.append(change_of(task, S.STARTED))
        batch.events.append(events.task_failed(self.name, task.key, reason, now, task.on_failure))
        return True

    # failures, and what subgraphs need (`dalsegno.engine.subgraphs`) ---------------

    def _terminal(self, task_id: int) -> None:
        """A task failed for good: its policy, then its subgraph, decide what follows."""
        task = self.tasks[task_id]
        if task.on_failure == "ignore":
            self.release([task_id], None)
            return
        if self.groups is not None and task.subgraph is not None:
            culprit = f"task '{task.key}' ({task.operation}): {task.error}"
            self.groups.task_failed(task.subgraph, culprit)
            return
        self._failed.append(task_id)

    def release(self, task_ids: list[int], inside: set[int] | None) -> None:
        """Failed nodes whose failure is ignored: their dependents (outside `inside`) run
        as if each of `task_ids` had succeeded."""
        waiting, tasks = self._waiting, self.tasks
        for task_id in task_ids:
            if tasks[task_id].status is S.SUCCEEDED or task_id in self._released:
                continue
            self._released.add(task_id)
            for dependent in self._dependents.get(task_id, ()):
                if inside is not None and dependent in inside:
                    continue
                left = waiting.pop(dependent) - 1
                if left:
                    waiting[dependent] = left
                elif tasks[dependent].status is S.PENDING:
                    self._ready.append((dependent, False))

    def running_ids(self) -> list[int]:
        return list(self._running)

    def start_ready(self, task_ids: list[int]) -> None:
        """Queue those of `task_ids` that are pending with every dependency done."""
        for task_id in task_ids:
            if self.tasks[task_id].status is S.PENDING and task_id not in self._waiting:
                self._ready.append((task_id, False))

    def forget(self, ids: set[int]) -> None:
        """The tasks `ids` were reset to pending (a subgraph retry): drop them from the
        queues and count again what they, and their dependents, wait for."""
        purge(self._ready, self._timers, ids)
        self._released -= ids
        dependencies = self._dependencies()
        counted = set(ids)
        for task_id in ids:
            counted.update(self._dependents.get(task_id, ()))
        for task_id in counted:
            left = self._unmet(dependencies.get(task_id, ()))
            if left:
                self._waiting[task_id] = left
            else:
                self._waiting.pop(task_id, None)

    # what the agent tasks hand back (`dalsegno.engine.agents`) --------------------

    def agent_attempt_ended(self, completion: Completion) -> None:
        """An awaited agent task reported: its outcome, as a manager-side attempt's."""
        self.awaited.discard(completion.task_id)
        self._running[completion.task_id] = completion.attempt
        self._complete(completion)

    def agent_task_failed(self, task_id: int) -> None:
        """An awaited agent task failed without an outcome (its agent was lost)."""
        self.awaited.discard(task_id)
        self._terminal(task_id)

    # the loop ----------------------------------------------------------------------

    def execute(self) -> None:
        """Run the graph to its end; raises `GraphFailed` naming every failed task."""
        self._take_up()
        try:
            self._loop()
        finally:
            self.agents.close()
        if self._failed or self.failed_subgraphs:
            raise GraphFailed(self._failure_message())

    def _loop(self) -> None:
        run, groups = self.run, self.groups
        while True:
            run.check_alive()
            mode = run.cancel_mode
            if mode is not None:
                self._cancel(mode)
            elif run.draining:
                self._drain()
            else:
                if groups is not None and groups.failing:
                    groups.settle()
                self._dispatch()
            if (
                mode is None
                and not (
                    self._ready
                    or self._running
                    or self._timers
                    or self.awaited
                    or (groups is not None and groups.timers)
                )
                and not self._stranded()
            ):
                break
            run.flush()
            self._wait()
        run.flush()

    def _dependencies(self) -> dict[int, list[int]]:
        """Each task's dependencies: `_dependents` turned around (built when a subgraph
        retry or the quiet graph's check needs it, not on the hot path)."""
        dependencies: dict[int, list[int]] = {}
        for dependency, dependents in self._dependents.items():
            for dependent in dependents:
                dependencies.setdefault(dependent, []).append(dependency)
        return dependencies

    def _unmet(self, dependencies: Iterable[int]) -> int:
        """How many of `dependencies` still hold their dependent back: not succeeded, and
        not released (failed with `ignore`)."""
        tasks, released = self.tasks, self._released
        return sum(
            1
            for dependency in dependencies
            if tasks[dependency].status is not S.SUCCEEDED and dependency not in released
        )

    def _stranded(self) -> bool:
        """The graph is quiet: queue any pending task that nothing holds back any more (its
        dependencies succeeded or failed with `ignore`, its subgraph runs). The counts kept
        on the way make this find none; it is the net under them, so that a graph never
        ends with a task left pending that could run. Returns True when it queued one."""
        groups, tasks = self.groups, self.tasks
        pending = [task for task in tasks.values() if task.status is S.PENDING]
        if not pending:
            return False
        dependencies = self._dependencies()
        found = []
        for task in pending:
            if groups is not None and task.subgraph is not None and groups.held(task.subgraph):
                continue
            if not self._unmet(dependencies.get(task.id, ())):
                found.append(task.id)
        for task_id in found:
            log.warning(
                "execution %s: task '%s' of graph '%s' was left pending with nothing holding "
                "it back; it runs now",
                self.run.execution_id,
                tasks[task_id].key,
                self.name,
            )
            self._waiting.pop(task_id, None)
            self._ready.append((task_id, False))
        return bool(found)

    def _drain(self) -> None:
        """This process hands the execution over: start nothing, and leave once no running
        operation would be failed by the next owner (docs/design.md, "Graceful stop").

        Resumable operations get the drain's grace to end (after it, the next owner runs
        them again); a non-resumable manager-side operation is waited for to its end,
        however long: handing it over would fail it.
        """
        if not self._running:
            self._hand_over()
        if self.run.drain_expired() and not self._unresumable_running():
            self._hand_over()

    def resumable(self, task: TaskRecord) -> Resumability:
        return self.resumability if task.instance is None else self.bound_resumability

    def _unresumable_running(self) -> list[str]:
        keys = []
        for task_id in self._running:
            task = self.tasks[task_id]
            if not self.resumable(task)(task.operation)[0]:
                keys.append(task.key)
        if keys:
            self.run.waiting_for(keys)
        return keys

    def _hand_over(self) -> None:
        self.run.flush()
        raise ExecutionAbandoned("handed over to another manager")

    def _cancel(self, mode: CancelMode) -> None:
        run = self.run
        if mode is CancelMode.FORCE:
            run.abandon_running(self, dict(self._running))
            raise ExecutionCancelled
        if mode is CancelMode.KILL:
            now = time.time()
            for task_id, attempt in self._running.items():
                task = self.tasks[task_id]
                task.status, task.error, task.ended_at = S.FAILED, "killed by cancel", now
                run.batch.tasks.append(change_of(task, S.STARTED))
                run.batch.attempt_ends.append(
                    AttemptEnd(task_id, attempt, "killed", now, "killed by cancel")
                )
                run.batch.events.append(events.task_failed(self.name, task.key, task.error, now))
                run.stop_operation(task_id, attempt)
                run.ignore_late(self, task_id, attempt)
            self._running.clear()
            self.agents.kill()
            raise ExecutionCancelled
        self.agents.check()  # agent tasks that started are awaited like the others
        if not self._running and not self.agents.started:
            raise ExecutionCancelled

    def _dispatch(self) -> None:
        run = self.run
        free = run.concurrency - len(self._running)
        if free <= 0 or not self._ready:
            return
        batch = run.batch
        now = time.time()
        worker = run.worker_name
        handed: list[tuple[TaskRecord, _Before, bool]] = []
        groups = self.groups
        while self._ready and free > 0:
            task_id, resume = self._ready.popleft()
            task = self.tasks[task_id]
            if groups is not None and task.subgraph is not None and groups.held(task.subgraph):
                continue  # its subgraph fails or waits: a retry resets it, or it stays
            before = (task.status, task.attempts, task.started_at, task.ended_at, task.next_run_at)
            if where_it_runs(task.agent, run.dry_run) is not None:
                task.status = S.SENT  # its claim's ctx.resume is decided here, stored with it
                batch.starts.append(change_of(task, before[0], resume=resume))
                batch.start_events.append(events.task_sent(self.name, task.key, task.agent, now))
                handed.append((task, before, resume))
                continue
            task.attempts += 1
            task.status, task.started_at, task.ended_at, task.next_run_at = (
                S.STARTED,
                now,
                None,
                None,
            )
            batch.starts.append(change_of(task, before[0]))
            if task.instance is not None and not run.dry_run:
                starting = InstanceBinding.from_json(json.loads(task.instance))
                if starting.starting is not None:  # e.g. `creating`, with the attempt's start
                    batch.instance_starts.append(
                        InstanceChange(starting.instance, starting.starting)
                    )
            batch.attempt_starts.append(AttemptStart(task_id, before[1], worker, now))
            batch.start_events.append(events.task_sent(self.name, task.key, None, now))
            batch.start_events.append(
                events.task_started(self.name, task.key, task.retries, task.max_retries, now)
            )
            handed.append((task, before, resume))
            free -= 1
        # `started` (and the success of every dependency) is durable before a first line runs.
        run.flush()
        if run.status is not ExecutionState.STARTED:
            # A cancel was committed first: the store wrote none of these starts.
            for task, before, resume in reversed(handed):
                (task.status, task.attempts, task.started_at, task.ended_at, task.next_run_at) = (
                    before
                )
                self._ready.appendleft((task.id, resume))
            return
        if any(where_it_runs(task.agent, run.dry_run) for task, _, _ in handed):
            self.agents.sent()
        for task, before, resume in handed:
            if where_it_runs(task.agent, run.dry_run) is not None:
                self.awaited.add(task.id)
                continue
            attempt = before[1]
            run.crash_point("before_operation", self.name, task.key)
            self._running[task.id] = attempt
            if task.timeout is not None:
                heapq.heappush(self._deadlines, (time.monotonic() + task.timeout, task.id, attempt))
            run.submit(self, task, attempt, resume)

    def _wait(self) -> None:
        run = self.run
        timeout = run.poll_interval
        now = time.monotonic()
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - now))
        if self._deadlines:
            timeout = min(timeout, max(0.0, self._deadlines[0][0] - now))
        groups = self.groups
        if groups is not None and groups.timers:
            timeout = min(timeout, max(0.0, groups.timers[0][0] - now))
        if self.awaited:
            timeout = min(timeout, self.agents.due_in(now))
        for completion in run.take_completions(timeout):
            self._complete(completion)
        self.agents.check()
        self._fire_timers()
        if groups is not None and groups.timers:
            groups.fire(time.monotonic())

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, task_id = heapq.heappop(self._timers)
            self._ready.append((task_id, False))
        while self._deadlines and self._deadlines[0][0] <= now:
            _, task_id, attempt = heapq.heappop(self._deadlines)
            if self._running.get(task_id) == attempt:
                task = self.tasks[task_id]
                self.run.stop_operation(task_id, attempt)
                self.run.ignore_late(self, task_id, attempt)
                self._complete(
                    Completion(task_id, attempt, False, None, f"timed out after {task.timeout:g}s"),
                    outcome="timed_out",
                )

    # outcomes ----------------------------------------------------------------------

    def _complete(self, completion: Completion, outcome: str | None = None) -> None:
        task_id, attempt = completion.task_id, completion.attempt
        if self._running.get(task_id) != attempt:
            self.run.late_result(completion)
            return
        del self._running[task_id]
        task = self.tasks[task_id]
        batch = self.run.batch
        now = time.time()
        task.ended_at = now
        if completion.succeeded:
            self.run.crash_point("after_operation", self.name, task.key)
            task.status, task.error = S.SUCCEEDED, None
            task.result_json = completion.result_json
            batch.tasks.append(change_of(task, S.STARTED))
            if completion.instances:  # in the same transaction as the success
                batch.instances.extend(completion.instances)
            batch.attempt_ends.append(AttemptEnd(task_id, attempt, "succeeded", now, None))
            batch.events.append(events.task_succeeded(self.name, task.key, now))
            for dependent in self._dependents.get(task_id, ()):
                left = self._waiting.pop(dependent) - 1
                if left:
                    self._waiting[dependent] = left
                elif self.tasks[dependent].status is S.PENDING:
                    self._ready.append((dependent, False))
            return
        error = completion.error or "failed"
        batch.attempt_ends.append(
            AttemptEnd(task_id, attempt, outcome or "failed", now, completion.detail or error)
        )
        task.error = error
        if completion.recoverable and (task.retries < task.max_retries or task.max_retries < 0):
            task.retries += 1
            delay = (
                task.retry_interval if completion.retry_after is None else completion.retry_after
            )
            task.status, task.next_run_at = S.RESCHEDULED, now + max(0.0, delay)
            batch.tasks.append(change_of(task, S.STARTED))
            batch.events.append(
                events.task_rescheduled(
                    self.name, task.key, error, task.retries, task.max_retries, now
                )
            )
            heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), task_id))
            return
        task.status = S.FAILED
        batch.tasks.append(change_of(task, S.STARTED))
        batch.events.append(events.task_failed(self.name, task.key, error, now, task.on_failure))
        self._terminal(task_id)

    def _failure_message(self) -> str:
        failed = [self.tasks[task_id] for task_id in self._failed]
        parts = [f"'{task.key}' ({task.operation}): {task.error}" for task in failed]
        noun = "task" if len(failed) == 1 else "tasks"
        said = f"{len(failed)} {noun} failed in graph '{self.name}': " + "; ".join(parts)
        if self.failed_subgraphs:
            assert self.groups is not None
            subs = [f"'{key}': {self.groups.subs[key].error}" for key in self.failed_subgraphs]
            noun = "subgraph" if len(subs) == 1 else "subgraphs"
            sub_said = f"{len(subs)} {noun} failed in graph '{self.name}': " + "; ".join(subs)
            said = f"{said}; {sub_said}" if failed else sub_said
        return clip(said)

    def result_of(self, task_id: int) -> Any:
        return self.tasks[task_id].result
