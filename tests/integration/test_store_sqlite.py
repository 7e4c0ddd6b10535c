"""The SQLite store on a real file: leases, fencing, guarded moves, graphs and events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dalsegno.model.errors import DalsegnoError, LeaseLostError, RefusedTransitionError
from dalsegno.model.records import (
    AttemptEnd,
    AttemptStart,
    Batch,
    Claim,
    ExecutionChange,
    ExecutionRecord,
    LeaseOwner,
    NewEvent,
    NewTask,
    StoredGraph,
    TaskChange,
    TaskRecord,
)
from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.store import Store, open_store

E = ExecutionState
T = TaskState

WORKFLOW = "tests.workflows:deploy"
OWNER = LeaseOwner(host="manager-a", pid=1111, proc_start="100")
OTHER = LeaseOwner(host="manager-b", pid=2222, proc_start="200")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store on a fresh SQLite file."""
    opened = open_store(f"sqlite:///{tmp_path / 'dalsegno.db'}")
    yield opened
    opened.close()


# --- helpers ------------------------------------------------------------------------------


def later(seconds: float = 30.0) -> float:
    return time.time() + seconds


def create_pending(store: Store, **params: Any) -> ExecutionRecord:
    return store.create_execution(
        WORKFLOW, params, E.PENDING, None, None, [NewEvent("execution_created", "created")]
    )


def claim(
    store: Store,
    execution: ExecutionRecord,
    owner: LeaseOwner = OWNER,
    *,
    status: ExecutionState = E.STARTED,
    resets: list[TaskChange] | None = None,
    events: list[NewEvent] | None = None,
) -> ExecutionRecord | None:
    """Claim from the state and token last seen in `execution`."""
    return store.claim(
        Claim(
            execution_id=execution.id,
            expected_status=execution.status,
            expected_token=execution.lease_token,
            owner=owner,
            lease_expires_at=later(),
            status=status,
        ),
        resets or [],
        events or [],
    )


def create_running(store: Store, **params: Any) -> ExecutionRecord:
    claimed = claim(store, create_pending(store, **params))
    assert claimed is not None
    return claimed


def new_task(key: str, operation: str = "tests.ops:provision", **options: Any) -> NewTask:
    kwargs = options.pop("kwargs", {"name": key})
    return NewTask(
        key=key,
        operation=operation,
        agent=options.get("agent"),
        kwargs=kwargs,
        kwargs_json=json.dumps(kwargs),
        max_retries=options.get("max_retries", 0),
        retry_interval=options.get("retry_interval", 1.0),
        timeout=options.get("timeout"),
    )


def store_main_graph(store: Store, execution: ExecutionRecord) -> dict[str, TaskRecord]:
    """vm1 and vm2, then app after both; returns the stored tasks by key."""
    stored = store.store_graph(
        execution.id,
        execution.lease_token,
        "main",
        [new_task("vm1"), new_task("vm2"), new_task("app", "tests.ops:install", agent="web")],
        [("app", "vm1"), ("app", "vm2")],
        [NewEvent("graph_stored", "stored graph 'main'", graph="main")],
    )
    return {task.key: task for task in stored.tasks}


def move(task: TaskRecord, expected: TaskState, status: TaskState, **values: Any) -> TaskChange:
    return TaskChange(
        task_id=task.id,
        expected=expected,
        status=status,
        retries=values.get("retries", 0),
        attempts=values.get("attempts", 0),
        error=values.get("error"),
        result_json=values.get("result_json"),
        next_run_at=values.get("next_run_at"),
        started_at=values.get("started_at"),
        ended_at=values.get("ended_at"),
    )


def batch(of: ExecutionRecord, **parts: Any) -> Batch:
    """Writes by the owner that `of` shows (its lease token)."""
    return Batch(
        execution_id=of.id,
        lease_token=of.lease_token,
        lease_expires_at=later(),
        **parts,
    )


def statuses(store: Store, execution: ExecutionRecord) -> dict[str, TaskState]:
    return {task.key: task.status for task in store.list_tasks(execution.id)}


def event_types(store: Store, execution: ExecutionRecord) -> list[str]:
    return [event.type for event in store.list_events(execution.id)]


def snapshot(store: Store, execution: ExecutionRecord) -> tuple[Any, ...]:
    """Everything the store holds for one execution, to show that nothing changed."""
    return (
        store.get_execution(execution.id),
        store.list_tasks(execution.id),
        store.list_attempts(execution.id),
        store.list_events(execution.id),
    )


# --- executions ---------------------------------------------------------------------------


def test_create_execution_stores_a_pending_execution_without_lease(store: Store) -> None:
    created = create_pending(store, hosts=2, names=["a", "b"])
    assert created.status is E.PENDING
    assert created.workflow == WORKFLOW
    assert created.params == {"hosts": 2, "names": ["a", "b"]}
    assert (created.lease_owner, created.lease_expires_at, created.lease_token) == (None, None, 0)
    assert created.started_at is None
    assert created.ended_at is None
    assert store.get_execution(created.id) == created
    assert event_types(store, created) == ["execution_created"]


def test_create_execution_started_takes_the_lease_at_once(store: Store) -> None:
    expires = later()
    created = store.create_execution(WORKFLOW, {}, E.STARTED, OWNER, expires, [])
    assert created.status is E.STARTED
    assert created.lease_owner == OWNER
    assert created.lease_expires_at == expires
    assert created.lease_token == 1
    assert created.started_at is not None


def test_an_unknown_execution_is_none(store: Store) -> None:
    assert store.get_execution("no-such-id") is None
    assert store.read_status("no-such-id") is None


def test_list_executions_newest_first_and_by_status(store: Store) -> None:
    first = create_pending(store)
    time.sleep(0.002)  # distinct creation times: "newest" must be well defined
    second = create_running(store)
    time.sleep(0.002)
    third = create_pending(store)
    assert [e.id for e in store.list_executions()] == [third.id, second.id, first.id]
    assert [e.id for e in store.list_executions(E.PENDING)] == [third.id, first.id]
    assert [e.id for e in store.list_executions(E.STARTED)] == [second.id]
    assert store.list_executions(E.COMPLETED) == []


# --- claim ---------------------------------------------------------------------------------


def test_claim_takes_the_lease_and_the_token_grows_by_one(store: Store) -> None:
    pending = create_pending(store)
    claimed = claim(store, pending, events=[NewEvent("workflow_started", "starting")])
    assert claimed is not None
    assert claimed.status is E.STARTED
    assert claimed.lease_owner == OWNER
    assert claimed.lease_token == pending.lease_token + 1
    assert claimed.started_at is not None
    assert store.read_status(pending.id) == (E.STARTED, claimed.lease_token)
    assert event_types(store, pending) == ["execution_created", "workflow_started"]


def test_a_takeover_gives_the_lease_to_the_new_owner_with_the_next_token(store: Store) -> None:
    running = create_running(store)
    taken = claim(store, running, OTHER)
    assert taken is not None
    assert taken.status is E.STARTED
    assert taken.lease_owner == OTHER
    assert taken.lease_token == running.lease_token + 1
    assert taken.started_at == running.started_at  # a takeover does not restart the clock


def test_a_claim_with_a_stale_token_returns_none_and_changes_nothing(store: Store) -> None:
    running = create_running(store)
    taken = claim(store, running, OTHER)
    assert taken is not None
    before = snapshot(store, running)
    # `running` is what the first owner saw: its token is one behind now.
    assert claim(store, running, events=[NewEvent("x", "never written")]) is None
    assert snapshot(store, running) == before


def test_a_claim_from_a_stale_state_returns_none_and_changes_nothing(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    store.request_cancel(running.id, E.CANCELLING, [])
    before = snapshot(store, running)
    # Same token, but the state seen (started) is no longer the stored one (cancelling).
    resets = [move(graph["vm1"], T.PENDING, T.SENT)]
    assert claim(store, running, OTHER, resets=resets, events=[NewEvent("x", "no")]) is None
    assert snapshot(store, running) == before


@pytest.mark.parametrize(
    ("start", "status"),
    [(E.COMPLETED, E.STARTED), (E.COMPLETED, E.PENDING), (E.QUEUED, E.STARTED)],
)
def test_a_claim_for_a_move_the_table_does_not_list_is_refused(
    store: Store, start: ExecutionState, status: ExecutionState
) -> None:
    # docs/design.md section 2: completed is an end state with no exit; queued only goes to pending.
    execution = store.create_execution(WORKFLOW, {}, start, None, None, [])
    before = snapshot(store, execution)
    try:
        claimed = claim(store, execution, status=status)
    except DalsegnoError:
        claimed = None
    assert claimed is None, f"the store let {start} -> {status} through"
    assert snapshot(store, execution) == before


def test_a_claim_applies_the_resets_of_a_resume_in_the_same_transaction(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    failed = move(graph["vm1"], T.PENDING, T.SENT)
    store.apply(batch(running, tasks=[failed]))
    store.apply(batch(running, tasks=[move(graph["vm1"], T.SENT, T.FAILED, error="boom")]))
    ended = store.apply(
        batch(
            running,
            execution=ExecutionChange(frozenset({E.STARTED}), E.FAILED, "boom", release_lease=True),
        )
    )
    assert ended is E.FAILED
    failed_execution = store.get_execution(running.id)
    assert failed_execution is not None

    resumed = claim(
        store,
        failed_execution,
        OTHER,
        resets=[move(graph["vm1"], T.FAILED, T.PENDING, retries=0)],
        events=[NewEvent("workflow_resumed", "resuming (reset: vm1)")],
    )
    assert resumed is not None
    assert resumed.status is E.STARTED
    assert resumed.error is None
    assert resumed.ended_at is None
    assert resumed.lease_token == failed_execution.lease_token + 1
    assert statuses(store, running)["vm1"] is T.PENDING
    assert event_types(store, running)[-1] == "workflow_resumed"


def test_a_claim_whose_reset_raced_is_rolled_back_whole(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    end = ExecutionChange(frozenset({E.STARTED}), E.FAILED, "boom", release_lease=True)
    store.apply(batch(running, execution=end))
    failed = store.get_execution(running.id)
    assert failed is not None
    before = snapshot(store, running)
    # vm1 is pending, not failed: the reset is refused, and with it the whole claim.
    with pytest.raises(RefusedTransitionError):
        claim(store, failed, resets=[move(graph["vm1"], T.FAILED, T.PENDING)])
    assert snapshot(store, running) == before


# --- apply: fenced by the lease token ---------------------------------------------------------


def test_apply_commits_a_whole_batch_and_renews_the_lease(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    now = time.time()
    work = batch(
        running,
        tasks=[move(graph["vm1"], T.PENDING, T.STARTED, attempts=1, started_at=now)],
        attempt_starts=[AttemptStart(graph["vm1"].id, 0, "manager-a/thread-1", now)],
        events=[NewEvent("task_started", "Task started 'vm1'", graph="main", task_key="vm1")],
    )
    assert store.apply(work) is E.STARTED
    execution = store.get_execution(running.id)
    assert execution is not None
    assert execution.lease_expires_at == work.lease_expires_at

    done = batch(
        running,
        tasks=[
            move(
                graph["vm1"],
                T.STARTED,
                T.SUCCEEDED,
                attempts=1,
                result_json='{"ip": "10.0.0.7"}',
                started_at=now,
                ended_at=now + 1,
            )
        ],
        attempt_ends=[AttemptEnd(graph["vm1"].id, 0, "succeeded", now + 1, None)],
    )
    store.apply(done)
    vm1 = {task.key: task for task in store.list_tasks(running.id)}["vm1"]
    assert (vm1.status, vm1.result, vm1.attempts) == (T.SUCCEEDED, {"ip": "10.0.0.7"}, 1)
    [attempt] = store.list_attempts(running.id)
    assert (attempt.task_id, attempt.number, attempt.outcome) == (vm1.id, 0, "succeeded")
    assert attempt.worker == "manager-a/thread-1"
    assert store.count_tasks_by_status(running.id) == {"succeeded": 1, "pending": 2}


def test_a_batch_naming_a_task_twice_applies_its_changes_in_order(store: Store) -> None:
    """PostgreSQL writes a batch's task changes as one statement; one naming a task twice
    must still move it step by step, as row-by-row updates do."""
    running = create_running(store)
    graph = store_main_graph(store, running)
    now = time.time()
    work = batch(
        running,
        tasks=[
            move(graph["vm1"], T.PENDING, T.STARTED, attempts=1, started_at=now),
            move(graph["vm1"], T.STARTED, T.SUCCEEDED, attempts=1, ended_at=now + 1),
            move(graph["vm2"], T.PENDING, T.STARTED, attempts=1, started_at=now),
        ],
        events=[NewEvent("log", f"line {n}", created_at=now + n) for n in range(5)],
    )
    assert store.apply(work) is E.STARTED
    assert statuses(store, running) == {"vm1": T.SUCCEEDED, "vm2": T.STARTED, "app": T.PENDING}
    logged = [e.message for e in store.list_events(running.id) if e.type == "log"]
    assert logged == [f"line {n}" for n in range(5)]  # in the order given


def test_a_batch_with_an_old_token_raises_lease_lost_and_writes_nothing(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    taken = claim(store, running, OTHER)
    assert taken is not None
    before = snapshot(store, running)
    stale = batch(
        running,  # the first owner's token
        tasks=[move(graph["vm1"], T.PENDING, T.SENT)],
        attempt_starts=[AttemptStart(graph["vm1"].id, 0, "manager-a", time.time())],
        events=[NewEvent("task_sent", "Sending task 'vm1'", graph="main", task_key="vm1")],
        execution=ExecutionChange(frozenset({E.STARTED}), E.COMPLETED, release_lease=True),
    )
    with pytest.raises(LeaseLostError):
        store.apply(stale)
    assert snapshot(store, running) == before


def test_a_batch_after_the_lease_was_released_raises_lease_lost(store: Store) -> None:
    running = create_running(store)
    end = ExecutionChange(frozenset({E.STARTED}), E.COMPLETED, release_lease=True)
    assert store.apply(batch(running, execution=end)) is E.COMPLETED
    completed = store.get_execution(running.id)
    assert completed is not None
    assert completed.lease_owner is None
    assert completed.lease_expires_at is None
    assert completed.ended_at is not None
    with pytest.raises(LeaseLostError):
        store.apply(batch(running, events=[NewEvent("log", "too late")]))
    assert not store.renew_lease(running.id, running.lease_token, later())


def test_renew_lease_is_fenced_by_the_token(store: Store) -> None:
    running = create_running(store)
    expires = later(60)
    assert store.renew_lease(running.id, running.lease_token, expires)
    execution = store.get_execution(running.id)
    assert execution is not None
    assert execution.lease_expires_at == expires
    assert not store.renew_lease(running.id, running.lease_token - 1, later(120))
    assert store.get_execution(running.id) == execution


# --- guarded task updates -----------------------------------------------------------------------


def test_a_task_change_from_a_state_no_longer_stored_rolls_back_the_batch(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    before = snapshot(store, running)
    raced = batch(
        running,
        tasks=[
            move(graph["vm1"], T.PENDING, T.SENT),  # fine on its own
            move(graph["vm2"], T.SENT, T.STARTED),  # vm2 is pending, not sent
        ],
        attempt_starts=[AttemptStart(graph["vm1"].id, 0, "manager-a", time.time())],
        events=[NewEvent("task_sent", "Sending task 'vm1'", graph="main", task_key="vm1")],
    )
    with pytest.raises(RefusedTransitionError):
        store.apply(raced)
    assert snapshot(store, running) == before
    assert statuses(store, running) == {"vm1": T.PENDING, "vm2": T.PENDING, "app": T.PENDING}


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ((), (T.PENDING, T.SUCCEEDED)),  # never ran
        ((), (T.PENDING, T.FAILED)),  # pending tasks stay pending, even on a kill-cancel
        ((T.SENT,), (T.SENT, T.SUCCEEDED)),  # never started
        # success is final, but for a subgraph's retry (succeeded -> pending, docs/design.md)
        ((T.SENT, T.STARTED, T.SUCCEEDED), (T.SUCCEEDED, T.FAILED)),
        ((T.SENT, T.STARTED, T.SUCCEEDED), (T.SUCCEEDED, T.SENT)),
        ((T.SENT, T.STARTED, T.RESCHEDULED), (T.RESCHEDULED, T.SUCCEEDED)),
        ((T.SENT, T.FAILED), (T.FAILED, T.SENT)),  # a failed task is reset to pending first
        ((T.SENT, T.FAILED), (T.FAILED, T.STARTED)),  # not even as a dispatch
    ],
)
def test_a_task_move_not_in_the_table_is_refused(
    store: Store, path: tuple[TaskState, ...], refused: tuple[TaskState, TaskState]
) -> None:
    running = create_running(store)
    vm1 = store_main_graph(store, running)["vm1"]
    state = T.PENDING
    for step in path:
        store.apply(batch(running, tasks=[move(vm1, state, step)]))
        state = step
    assert statuses(store, running)["vm1"] is refused[0]
    before = snapshot(store, running)
    with pytest.raises(RefusedTransitionError):
        store.apply(batch(running, tasks=[move(vm1, *refused)], events=[NewEvent("log", "never")]))
    assert snapshot(store, running) == before


@pytest.mark.parametrize(
    "path",
    [(), (T.SENT,), (T.SENT, T.STARTED, T.RESCHEDULED)],
    ids=["pending", "sent", "rescheduled"],
)
def test_a_manager_side_dispatch_commits_sent_and_started_together(
    store: Store, path: tuple[TaskState, ...]
) -> None:
    # docs/design.md section 2 lists sent -> started; a manager-side task walks both in one commit.
    running = create_running(store)
    vm1 = store_main_graph(store, running)["vm1"]
    state = T.PENDING
    for step in path:
        store.apply(batch(running, tasks=[move(vm1, state, step)]))
        state = step
    store.apply(batch(running, tasks=[move(vm1, state, T.STARTED, attempts=1)]))
    assert statuses(store, running)["vm1"] is T.STARTED


# --- guarded execution moves by the owner ---------------------------------------------------------


def test_an_execution_move_from_a_state_no_longer_stored_rolls_back_the_batch(
    store: Store,
) -> None:
    running = create_running(store)
    vm1 = store_main_graph(store, running)["vm1"]
    store.request_cancel(running.id, E.CANCELLING, [])
    before = snapshot(store, running)
    finish = batch(
        running,
        tasks=[move(vm1, T.PENDING, T.SENT)],
        events=[NewEvent("workflow_succeeded", "succeeded")],
        execution=ExecutionChange(frozenset({E.STARTED}), E.COMPLETED, release_lease=True),
    )
    with pytest.raises(RefusedTransitionError):
        store.apply(finish)
    assert snapshot(store, running) == before


def test_an_execution_move_not_in_the_table_is_refused(store: Store) -> None:
    running = create_running(store)
    before = snapshot(store, running)
    # started -> pending is not listed: only a takeover, an end or a cancel leave started.
    backwards = ExecutionChange(frozenset({E.STARTED}), E.PENDING)
    with pytest.raises(RefusedTransitionError):
        store.apply(batch(running, execution=backwards, events=[NewEvent("log", "never")]))
    assert snapshot(store, running) == before


# --- request_cancel: guarded by the state alone ---------------------------------------------------


def test_request_cancel_moves_a_running_execution_and_leaves_the_lease_alone(
    store: Store,
) -> None:
    running = create_running(store)
    asked = store.request_cancel(running.id, E.CANCELLING, [NewEvent("cancel_requested", "asked")])
    assert asked is not None
    assert asked.status is E.CANCELLING
    assert asked.lease_owner == running.lease_owner
    assert asked.lease_token == running.lease_token
    assert event_types(store, running)[-1] == "cancel_requested"
    # The owner learns of it from its next write, which its lease still allows.
    assert store.apply(batch(running, events=[NewEvent("log", "still mine")])) is E.CANCELLING


def test_a_cancel_can_be_escalated_to_force_then_kill(store: Store) -> None:
    running = create_running(store)
    for target in (E.CANCELLING, E.FORCE_CANCELLING, E.KILL_CANCELLING):
        asked = store.request_cancel(running.id, target, [])
        assert asked is not None
        assert asked.status is target


def test_a_pending_execution_is_cancelled_at_once(store: Store) -> None:
    pending = create_pending(store)
    cancelled = store.request_cancel(pending.id, E.CANCELLED, [NewEvent("cancelled", "done")])
    assert cancelled is not None
    assert cancelled.status is E.CANCELLED


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (E.COMPLETED, E.CANCELLING),
        (E.FAILED, E.KILL_CANCELLING),
        (E.PENDING, E.CANCELLING),
        (E.KILL_CANCELLING, E.CANCELLING),
        (E.FORCE_CANCELLING, E.CANCELLING),
    ],
)
def test_request_cancel_from_a_state_that_does_not_allow_it_changes_nothing(
    store: Store, start: ExecutionState, target: ExecutionState
) -> None:
    execution = store.create_execution(WORKFLOW, {}, start, OWNER, later(), [])
    before = snapshot(store, execution)
    assert store.request_cancel(execution.id, target, [NewEvent("cancel_requested", "x")]) is None
    assert snapshot(store, execution) == before


@pytest.mark.parametrize(
    ("start", "target"),
    [
        # The owner ends a cancel; a request from outside holds no lease and may not.
        (E.CANCELLING, E.CANCELLED),
        (E.KILL_CANCELLING, E.CANCELLED),
        # Outside requests only ask for a cancel: never an end state, never a start.
        (E.STARTED, E.COMPLETED),
        (E.STARTED, E.FAILED),
        (E.FAILED, E.STARTED),
    ],
)
def test_request_cancel_never_makes_a_move_only_the_owner_may_make(
    store: Store, start: ExecutionState, target: ExecutionState
) -> None:
    execution = store.create_execution(WORKFLOW, {}, start, OWNER, later(), [])
    before = snapshot(store, execution)
    try:
        moved = store.request_cancel(execution.id, target, [NewEvent("cancel_requested", "x")])
    except DalsegnoError:
        moved = None
    assert moved is None, f"a lease-less request moved {start} -> {target}"
    assert snapshot(store, execution) == before


# --- graphs --------------------------------------------------------------------------------------


def test_store_graph_and_load_graphs_round_trip(store: Store) -> None:
    running = create_running(store)
    stored = store.store_graph(
        running.id,
        running.lease_token,
        "main",
        [
            new_task("vm1", max_retries=3, retry_interval=2.5, timeout=60.0),
            new_task("vm2", kwargs={"name": "vm2", "size": 4, "tags": ["a", "b"]}),
            new_task("app", "tests.ops:install", agent="web", kwargs={}),
        ],
        [("app", "vm1"), ("app", "vm2")],
        [NewEvent("graph_stored", "stored", graph="main")],
    )
    cleanup = store.store_graph(
        running.id, running.lease_token, "cleanup", [new_task("vm1")], [], []
    )

    loaded = store.load_graphs(running.id)
    assert list(loaded) == ["main", "cleanup"]
    main = loaded["main"]
    assert main.id == stored.id
    assert main.tasks == stored.tasks
    assert sorted(main.edges) == sorted(stored.edges)
    assert loaded["cleanup"] == cleanup

    by_key = {task.key: task for task in main.tasks}
    by_id = {task.id: task.key for task in main.tasks}
    assert sorted((by_id[a], by_id[b]) for a, b in main.edges) == [("app", "vm1"), ("app", "vm2")]
    vm1, vm2, app = by_key["vm1"], by_key["vm2"], by_key["app"]
    assert (vm1.max_retries, vm1.retry_interval, vm1.timeout) == (3, 2.5, 60.0)
    assert vm2.kwargs == {"name": "vm2", "size": 4, "tags": ["a", "b"]}
    assert (app.operation, app.agent, app.kwargs) == ("tests.ops:install", "web", {})
    for task in main.tasks:
        assert task.graph == "main"
        assert task.execution_id == running.id
        assert (task.status, task.retries, task.attempts) == (T.PENDING, 0, 0)
        assert (task.error, task.result) == (None, None)
    # The same key in another graph is another task.
    assert loaded["cleanup"].tasks[0].id != vm1.id
    assert len(store.list_tasks(running.id)) == 4


def test_an_execution_without_graphs_loads_none(store: Store) -> None:
    running = create_running(store)
    assert store.load_graphs(running.id) == {}
    assert store.list_tasks(running.id) == []


def test_store_graph_with_an_old_token_stores_nothing(store: Store) -> None:
    running = create_running(store)
    assert claim(store, running, OTHER) is not None
    before = snapshot(store, running)
    with pytest.raises(LeaseLostError):
        store.store_graph(
            running.id,
            running.lease_token,
            "main",
            [new_task("vm1")],
            [],
            [NewEvent("graph_stored", "stored", graph="main")],
        )
    assert snapshot(store, running) == before
    assert store.load_graphs(running.id) == {}


def test_a_failure_before_commit_stores_no_part_of_the_graph(store: Store) -> None:
    running = create_running(store)

    def crash() -> None:
        raise RuntimeError("power loss")

    with pytest.raises(RuntimeError, match="power loss"):
        store.store_graph(running.id, running.lease_token, "main", [new_task("vm1")], [], [], crash)
    assert store.load_graphs(running.id) == {}


def test_stored_graph_is_what_store_graph_returns(store: Store) -> None:
    running = create_running(store)
    graph = store_main_graph(store, running)
    [loaded] = store.load_graphs(running.id).values()
    assert isinstance(loaded, StoredGraph)
    assert {task.key: task for task in loaded.tasks} == graph


# --- events --------------------------------------------------------------------------------------


def test_list_events_oldest_first_and_after_an_event(store: Store) -> None:
    running = create_running(store)
    other = create_running(store)
    store.apply(
        batch(
            running,
            events=[NewEvent("log", f"line {i}", graph="main", task_key="vm1") for i in range(4)],
        )
    )
    store.apply(batch(other, events=[NewEvent("log", "elsewhere")]))

    events = store.list_events(running.id)
    assert [event.message for event in events] == [
        "created",
        "line 0",
        "line 1",
        "line 2",
        "line 3",
    ]
    assert all(event.execution_id == running.id for event in events)
    assert all(isinstance(event.id, str) for event in events)
    assert (events[1].graph, events[1].task_key, events[1].level) == ("main", "vm1", "info")
    assert (events[0].graph, events[0].task_key) == (None, None)

    after = store.list_events(running.id, after=events[2].id)
    assert [event.message for event in after] == ["line 2", "line 3"]
    assert store.list_events(running.id, after=events[-1].id) == []
    assert [e.message for e in store.list_events(running.id, after=events[0].id, limit=2)] == [
        "line 0",
        "line 1",
    ]


def test_events_keep_their_given_time_or_get_the_time_of_writing(store: Store) -> None:
    running = create_running(store)
    before = time.time()
    store.apply(batch(running, events=[NewEvent("log", "stamped", created_at=123.5)]))
    store.apply(batch(running, events=[NewEvent("log", "unstamped")]))
    *_, stamped, unstamped = store.list_events(running.id)
    assert stamped.created_at == 123.5
    assert unstamped.created_at >= before


# --- finding executions by id prefix --------------------------------------------------------------


def test_find_execution_ids_by_prefix(store: Store) -> None:
    executions = [create_pending(store) for _ in range(3)]
    target = executions[0]
    assert store.find_execution_ids(target.id) == [target.id]
    # A prefix long enough to be unique among three random ids.
    assert store.find_execution_ids(target.id[:12]) == [target.id]
    assert len(store.find_execution_ids("")) > 1  # ambiguous: more than one match
    assert store.find_execution_ids("zz-no-such-prefix") == []


@pytest.mark.parametrize("wildcard", ["%", "_", "_%", "\\"])
def test_like_wildcards_in_a_prefix_match_only_themselves(store: Store, wildcard: str) -> None:
    create_pending(store)
    create_pending(store)
    assert store.find_execution_ids(wildcard) == []
