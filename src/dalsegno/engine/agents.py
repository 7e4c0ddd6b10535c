"""The owner's side of agent tasks: results applied, lost agents found, kills marked.

A graph's scheduler hands an agent task to its queue (`sent`) and awaits it. Agents write
only to the agent queue (dalsegno.store.agents); this module reads what they wrote for
the tasks this run awaits: the recorded results alone when an agent reported some (a
notification on `dalsegno_agent_results`), and every claimed task at least every
`CHECK_EVERY` seconds (its holder may have gone silent). A result becomes the same
`Completion` a manager-side operation produces, so the retry, failure and cancel rules
stay those of the scheduler; the results found together are applied in one group commit
with the rest of the run's batch. Every write goes through the run's fenced batch.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Protocol

from dalsegno.engine import events
from dalsegno.engine.attempts import Completion, change_of
from dalsegno.engine.fates import Action, Resumability, lost_attempt
from dalsegno.engine.instances import reported_changes
from dalsegno.model.limits import clip
from dalsegno.model.records import AttemptEnd, Batch, NewEvent, TaskRecord
from dalsegno.model.states import CancelMode, TaskState
from dalsegno.store.agent_records import RELEASED, RESULTS_CHANNEL, TASKS_CHANNEL, AwaitedTask

if TYPE_CHECKING:
    from dalsegno.engine.runner import EngineConfig
    from dalsegno.store.base import Store

S = TaskState
CHECK_EVERY = 1.0  # seconds between two looks at the store when no notification came
# Seconds a notified look waits after the one before while other agent tasks are awaited:
# results that come close together are read and applied in one group commit (an agent
# with one slot reports one every few ms). A run awaiting one task looks at once.
LOOK_GAP = 0.01


def agent_timeout(config: EngineConfig) -> float:
    """Seconds without a heartbeat after which an agent's attempts are lost.

    `EngineConfig.agent_timeout`, else `DALSEGNO_AGENT_TIMEOUT`, else the lease timeout.
    """
    if config.agent_timeout is not None:
        return config.agent_timeout
    raw = os.environ.get("DALSEGNO_AGENT_TIMEOUT")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            msg = f"DALSEGNO_AGENT_TIMEOUT must be a number of seconds, not {raw!r}"
            raise ValueError(msg) from None
        if value > 0:
            return value
        msg = f"DALSEGNO_AGENT_TIMEOUT must be > 0, not {raw!r}"
        raise ValueError(msg)
    return config.lease_timeout


class AwaitingGraph(Protocol):
    """What a graph's scheduler offers the agent tasks it awaits."""

    name: str
    tasks: dict[int, TaskRecord]
    awaited: set[int]
    resumability: Resumability

    def agent_attempt_ended(self, completion: Completion) -> None: ...

    def agent_task_failed(self, task_id: int) -> None: ...


class OwnerRun(Protocol):
    """What the run that owns the execution offers: its store, batch and fenced flush."""

    store: Store
    execution_id: str
    config: EngineConfig
    batch: Batch
    cancel_mode: CancelMode | None

    def flush(self) -> None: ...

    def wake(self) -> None: ...


def _agent_lost(graph: str, key: str, agent: str, what: str, now: float) -> NewEvent:
    return NewEvent(
        "task_agent_lost",
        f"Agent {agent} missed its heartbeats: task '{key}' {what}",
        graph,
        key,
        level="warning",
        created_at=now,
    )


class AgentTasks:
    """The agent tasks one graph run awaits."""

    def __init__(self, graph: AwaitingGraph, run: OwnerRun) -> None:
        self.graph = graph
        self.run = run
        self.timeout = agent_timeout(self.run.config)
        self.took_over_at = time.time()  # a manager's downtime never makes an agent look lost
        self.started: set[int] = set()  # awaited tasks the store has `started`
        self._next_check = 0.0
        self._looked = 0.0  # when the last look began (monotonic)
        self._notified = threading.Event()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None
        self._cancel_seen: str | None = None

    def close(self) -> None:
        self._closed.set()

    def sent(self) -> None:
        """Tasks were handed to agent queues: wake the agents' long-polls."""
        self.run.store.notify(TASKS_CHANNEL)
        self._watch()

    def _watch(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._wait_for_results,
                name=f"dalsegno-agent-results-{self.run.execution_id[:8]}",
                daemon=True,
            )
            self._watcher.start()

    def _wait_for_results(self) -> None:
        store = self.run.store
        while not self._closed.is_set():
            try:
                found = store.wait_for_notification([RESULTS_CHANNEL], CHECK_EVERY)
            except Exception:  # noqa: BLE001 - a store hiccup: the periodic look covers it
                self._closed.wait(CHECK_EVERY)
                continue
            if found:
                self._notified.set()
                self.run.wake()

    # looking -----------------------------------------------------------------------

    def check(self, force: bool = False) -> None:
        """Apply recorded results and requeue or fail the attempts of lost agents."""
        graph = self.graph
        if not graph.awaited:
            return
        self._watch()
        mode = self.run.cancel_mode
        if mode != self._cancel_seen:  # a cancel: look at once, agents may have started
            self._cancel_seen, force = mode, True
        now_mono = time.monotonic()
        full = force or now_mono >= self._next_check
        if not full and (not self._notified.is_set() or self.due_in(now_mono) > 0):
            return
        self._notified.clear()
        self._looked = now_mono
        if full:
            self._next_check = now_mono + CHECK_EVERY
            self.started.clear()
        found = self.run.store.awaited_agent_tasks(
            self.run.execution_id, graph.awaited, reported_only=not full
        )
        now = time.time()
        requeued = lost = False
        for seen in found:
            task = graph.tasks[seen.task_id]
            if seen.status not in (S.SENT, S.STARTED):
                continue
            task.status, task.attempts, task.started_at = (
                seen.status,
                seen.attempts,
                seen.started_at,
            )
            if seen.status is S.STARTED:
                task.next_run_at = None
                if seen.report is not None:
                    requeued |= self._apply(seen, now)
                    continue
                self.started.add(seen.task_id)
            if full and seen.holder is not None and self._lost(seen, now):
                lost = True
                requeued |= self._lose(seen, now)
        if lost or requeued:
            self.run.flush()
        if requeued:
            self.run.store.notify(TASKS_CHANNEL)

    def due_in(self, now: float) -> float:
        """Seconds until a notified look is due (0: now); the scheduler waits no longer."""
        if not self._notified.is_set():
            return CHECK_EVERY
        if len(self.graph.awaited) <= 1:
            return 0.0
        return max(0.0, self._looked + LOOK_GAP - now)

    def _lost(self, seen: AwaitedTask, now: float) -> bool:
        # `claimed_at` is renewed by every heartbeat of the holder that lists the attempt:
        # an agent restarted under the same name does not keep its predecessor's alive
        last = max(seen.claimed_at or 0.0, self.took_over_at)
        return now - last > self.timeout

    def _apply(self, seen: AwaitedTask, now: float) -> bool:
        """Apply the result of `seen`; True when its task went back to its queue."""
        report = seen.report
        assert report is not None
        graph = self.graph
        number = seen.attempts - 1
        self.started.discard(seen.task_id)
        if report.outcome == RELEASED:  # never ran: queued again, no retry used
            task = graph.tasks[seen.task_id]
            batch = self.run.batch
            batch.attempt_ends.append(
                AttemptEnd(task.id, number, RELEASED, now, f"released by agent {seen.holder}")
            )
            task.status = S.SENT
            batch.tasks.append(change_of(task, S.STARTED, resume=False))
            batch.events.append(
                NewEvent(
                    "task_released",
                    f"Agent {seen.holder} released task '{task.key}' unstarted: queued again",
                    graph.name,
                    task.key,
                    created_at=now,
                )
            )
            return True
        if report.outcome == "succeeded":
            completion = self._succeeded(seen, number)
        else:
            completion = Completion(
                seen.task_id,
                number,
                False,
                None,
                report.error or "failed",
                report.error,
                report.recoverable,
                report.retry_after,
            )
        graph.agent_attempt_ended(completion)
        return False

    def _succeeded(self, seen: AwaitedTask, number: int) -> Completion:
        """A reported success; a lifecycle task's carries its instance changes (committed
        with it by the owner's batch, as manager-side), kept to the task's instances."""
        report = seen.report
        assert report is not None
        completion = Completion(seen.task_id, number, True, report.result_json)
        binding = self.graph.tasks[seen.task_id].instance
        if binding is not None:
            try:
                completion.instances = reported_changes(binding, report.instances_json)
            except ValueError as exc:
                error = clip(f"the agent reported {exc}")
                return Completion(seen.task_id, number, False, None, error, None, False)
        return completion

    def _lose(self, seen: AwaitedTask, now: float) -> bool:
        """The holder of `seen` is lost (`dalsegno.engine.fates.lost_attempt`); returns True
        when the task went back to its queue."""
        graph, batch = self.graph, self.run.batch
        task = graph.tasks[seen.task_id]
        agent = seen.holder or "?"
        fate = lost_attempt(seen.status, task.key, task.operation, agent, graph.resumability)
        if seen.status is S.SENT:  # claimed, never started: it never ran
            batch.tasks.append(change_of(task, S.SENT))
            batch.events.append(_agent_lost(graph.name, task.key, agent, "queued again", now))
            return True
        batch.attempt_ends.append(
            AttemptEnd(task.id, seen.attempts - 1, "lost", now, f"agent {agent} missed heartbeats")
        )
        self.started.discard(task.id)
        if fate.action is not Action.FAIL:
            task.status = S.SENT
            batch.tasks.append(change_of(task, S.STARTED, resume=True))
            batch.events.append(
                _agent_lost(graph.name, task.key, agent, "queued again (resumable)", now)
            )
            return True
        task.status, task.ended_at, task.error = S.FAILED, now, fate.reason
        batch.tasks.append(change_of(task, S.STARTED))
        batch.events.append(
            events.task_failed(graph.name, task.key, task.error, now, task.on_failure)
        )
        graph.agent_task_failed(task.id)
        return False

    # cancel ------------------------------------------------------------------------

    def kill(self) -> None:
        """Kill-cancel: every agent task that started fails "killed by cancel"; the
        heartbeat answer tells its agent to stop it. One that reported already counts."""
        self.check(force=True)
        graph, batch = self.graph, self.run.batch
        now = time.time()
        for task_id in sorted(self.started):
            task = graph.tasks[task_id]
            task.status, task.error, task.ended_at = S.FAILED, "killed by cancel", now
            batch.tasks.append(change_of(task, S.STARTED))
            batch.attempt_ends.append(
                AttemptEnd(task_id, task.attempts - 1, "killed", now, "killed by cancel")
            )
            batch.events.append(events.task_failed(graph.name, task.key, task.error, now))
            graph.awaited.discard(task_id)
        self.started.clear()
