"""Subgraphs at run time (docs/design.md, "Subgraphs and failure policies"): a task that
fails terminally inside a subgraph makes it fail as a unit; once nothing inside runs, it
retries (every task inside reset to `pending`, its retry count and due time written in the
same batch) or, out of retries, fails naming the task, and its `on_failure` applies.

Only a graph that has subgraphs builds a `Groups`: the scheduler of any other graph never
calls into here.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from typing import TYPE_CHECKING

from dalsegno.engine import events
from dalsegno.model.records import StoredGraph, SubgraphChange, TaskChange
from dalsegno.model.states import TaskState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dalsegno.engine.scheduler import GraphRun

S = TaskState
PENDING, RETRYING, FAILED = "pending", "retrying", "failed"


def forever(max_retries: int) -> bool:
    """`retries=-1`: retries that never give up."""
    return max_retries < 0


class Groups:
    """The subgraphs of one running graph."""

    def __init__(self, graph: GraphRun, stored: StoredGraph) -> None:
        self.graph = graph
        self.graph_id = stored.id
        self.subs = {sub.key: sub for sub in stored.subgraphs}
        self.members: dict[str, list[int]] = {key: [] for key in self.subs}  # every task inside
        self.inner: dict[str, list[str]] = {key: [] for key in self.subs}  # every subgraph inside
        for task in stored.tasks:
            if task.subgraph is not None:
                for key in self.chain(task.subgraph):
                    self.members[key].append(task.id)
        for sub in self.subs.values():
            if sub.parent is not None:
                for key in self.chain(sub.parent):
                    self.inner[key].append(sub.key)
        self.failing: dict[str, str] = {}  # subgraph -> the failure that makes it fail
        self.timers: list[tuple[float, int, str]] = []  # (monotonic due, generation, key)
        self._generation = itertools.count()
        self._due: dict[str, int] = {}  # the generation of each subgraph's pending timer

    def chain(self, key: str | None) -> Iterator[str]:
        """`key` and the subgraphs it is nested in, innermost first."""
        while key is not None:
            yield key
            key = self.subs[key].parent

    def held(self, key: str | None) -> bool:
        """Whether the tasks of subgraph `key` may not start now: it (or one it is in)
        fails, waits for its retry, or failed."""
        for found in self.chain(key):
            if found in self.failing or self.subs[found].status != PENDING:
                return True
        return False

    # take-up ---------------------------------------------------------------------

    def take_up(self, now_wall: float, now_mono: float) -> None:
        """Place each subgraph by its stored state: a retry it waits for keeps its due
        time; a failure not carried out yet is carried out (a crash came between)."""
        for sub in self.subs.values():
            if sub.status == RETRYING:
                due = now_mono + max(0.0, (sub.next_run_at or now_wall) - now_wall)
                self._arm(sub.key, due)
            elif sub.status == FAILED:
                self._failed(sub.key)

    # failures --------------------------------------------------------------------

    def task_failed(self, key: str, culprit: str) -> None:
        """A task of subgraph `key` failed terminally (its policy is `fail`)."""
        if self.subs[key].status == PENDING:  # a failed one was decided already
            self.failing.setdefault(key, culprit)

    def settle(self) -> None:
        """Each failing subgraph that has nothing running inside retries or fails."""
        while True:
            ready = [key for key in self.failing if not self._busy(key)]
            if not ready:
                return
            ready.sort(key=lambda found: sum(1 for _ in self.chain(found)))  # outer first
            for key in ready:
                culprit = self.failing.pop(key, None)
                if culprit is None:
                    continue  # reset by the retry of a subgraph it is in
                sub = self.subs[key]
                if any(self.subs[found].status != PENDING for found in self.chain(sub.parent)):
                    continue  # in one that failed: nothing inside starts; it stays as it is
                if forever(sub.max_retries) or sub.retries < sub.max_retries:
                    self._retry(key, culprit)
                else:
                    self._give_up(key, culprit)

    def _busy(self, key: str) -> bool:
        graph = self.graph
        for task_id in itertools.chain(graph.running_ids(), graph.awaited):
            if key in self.chain(graph.tasks[task_id].subgraph):
                return True
        return False

    def _retry(self, key: str, culprit: str) -> None:
        graph, sub = self.graph, self.subs[key]
        run = graph.run
        run.flush()  # the failure first: a crash from here on finds it, and decides again
        now = time.time()
        expected = sub.status
        sub.retries += 1
        sub.status, sub.error = RETRYING, culprit
        sub.next_run_at = now + sub.retry_interval
        batch = run.batch
        batch.subgraphs.append(self._change(key, expected))
        for inner in self.inner[key]:
            self.failing.pop(inner, None)
            found = self.subs[inner]
            if found.status != PENDING or found.retries:
                was = found.status
                found.status, found.retries, found.next_run_at, found.error = (
                    PENDING,
                    0,
                    None,
                    None,
                )
                batch.subgraphs.append(self._change(inner, was))
        reset = self._reset_tasks(key)
        batch.events.append(
            events.subgraph_retrying(
                graph.name, key, culprit, sub.retries, sub.max_retries, reset, now
            )
        )
        run.crash_point("subgraph_reset", graph.name, key)
        run.flush()  # the reset and the retry count, in one transaction
        run.crash_point("subgraph_retry_wait", graph.name, key)
        self._arm(key, time.monotonic() + sub.retry_interval)

    def _reset_tasks(self, key: str) -> int:
        graph = self.graph
        inside = set(self.members[key])
        batch = graph.run.batch
        count = 0
        for task_id in self.members[key]:
            task = graph.tasks[task_id]
            if task.status is S.PENDING and not task.retries:
                continue
            was = task.status
            task.status, task.retries, task.error = S.PENDING, 0, None
            task.result_json, task.next_run_at = None, None
            batch.tasks.append(
                TaskChange(
                    task_id,
                    was,
                    S.PENDING,
                    0,
                    task.attempts,
                    None,
                    None,
                    None,
                    task.started_at,
                    task.ended_at,
                )
            )
            count += 1
        graph.forget(inside)
        return count

    def _give_up(self, key: str, culprit: str) -> None:
        graph, sub = self.graph, self.subs[key]
        now = time.time()
        expected = sub.status
        after = (
            f" after {sub.retries} retr{'y' if sub.retries == 1 else 'ies'}" if sub.retries else ""
        )
        sub.status, sub.error, sub.next_run_at = FAILED, f"{culprit}{after}", None
        graph.run.batch.subgraphs.append(self._change(key, expected))
        graph.run.batch.events.append(
            events.subgraph_failed(graph.name, key, sub.error, sub.on_failure == "ignore", now)
        )
        self._failed(key)

    def _failed(self, key: str) -> None:
        """Subgraph `key` is failed: its policy applies."""
        sub = self.subs[key]
        if sub.on_failure == "ignore":
            self.graph.release(self.members[key], set(self.members[key]))
        elif sub.parent is not None:
            if self.subs[sub.parent].status == PENDING:
                self.task_failed(sub.parent, f"subgraph '{key}': {sub.error}")
        else:
            self.graph.failed_subgraphs.append(key)

    # retries ---------------------------------------------------------------------

    def _arm(self, key: str, due: float) -> None:
        generation = next(self._generation)
        self._due[key] = generation
        heapq.heappush(self.timers, (due, generation, key))

    def fire(self, now: float) -> None:
        """Run again each subgraph whose retry is due."""
        while self.timers and self.timers[0][0] <= now:
            _, generation, key = heapq.heappop(self.timers)
            sub = self.subs[key]
            if self._due.get(key) != generation or sub.status != RETRYING:
                continue  # reset since by a retry of a subgraph it is in
            del self._due[key]
            sub.status, sub.next_run_at = PENDING, None
            self.graph.run.batch.subgraphs.append(self._change(key, RETRYING))
            self.graph.start_ready(self.members[key])

    def _change(self, key: str, expected: str) -> SubgraphChange:
        sub = self.subs[key]
        return SubgraphChange(
            self.graph_id, key, expected, sub.status, sub.retries, sub.next_run_at, sub.error
        )


def purge(ready: deque[tuple[int, bool]], timers: list[tuple[float, int]], ids: set[int]) -> None:
    """Drop the tasks `ids` from the ready queue and the retry timers, in place."""
    kept = [entry for entry in ready if entry[0] not in ids]
    ready.clear()
    ready.extend(kept)
    timers[:] = [entry for entry in timers if entry[1] not in ids]
    heapq.heapify(timers)
