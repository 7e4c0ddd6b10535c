"""The lifecycle (`dalsegno.engine.lifecycle`) on the in-memory store (tests/unit/fakes.py):
what each kind of take-up claims, resets, records and runs."""

from __future__ import annotations

import socket
import time
from typing import Any, cast

import pytest

from dalsegno.engine.lease import this_owner
from dalsegno.engine.lifecycle import Lifecycle, take_up_of_claimed
from dalsegno.engine.resume import manual_take_up
from dalsegno.engine.runner import EngineConfig
from dalsegno.model.definitions import WorkflowDefinition
from dalsegno.model.records import LeaseOwner
from dalsegno.model.states import ExecutionState, TakeUp, TaskState
from dalsegno.store.base import Store
from unit.fakes import MemoryStore

E, S = ExecutionState, TaskState
RESUMABLE = WorkflowDefinition("deploy", resumable=True)
CONFIG = EngineConfig(lease_timeout=5.0, poll_interval=0.01)
STATES = {"a": S.SUCCEEDED, "b": S.FAILED, "c": S.RESCHEDULED, "d": S.STARTED, "e": S.PENDING}


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def lifecycle(store: MemoryStore) -> Lifecycle:
    return Lifecycle(cast(Store, store), CONFIG)


def crashed(store: MemoryStore, **fields: Any) -> str:
    """A `started` execution whose owner on this host is gone."""
    dead = LeaseOwner(socket.gethostname(), 2**22 + 17, "0")
    record = store.add_execution(
        E.STARTED, lease_owner=dead, lease_expires_at=time.time() + 600, **fields
    )
    store.add_graph(record.id, STATES)
    return record.id


def failed(store: MemoryStore, **fields: Any) -> str:
    record = store.add_execution(E.FAILED, error="b failed", **fields)
    store.add_graph(record.id, STATES)
    return record.id


def statuses(store: MemoryStore, execution_id: str) -> dict[str, str]:
    return {task.key: task.status.value for task in store.list_tasks(execution_id)}


def test_a_person_resuming_a_failed_execution_resets_failed_and_rescheduled_tasks(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    execution_id = failed(store)
    execution = store.get_execution(execution_id)
    assert execution is not None and manual_take_up(execution) is TakeUp.RESUME
    claimed, written = lifecycle.claim_resume(
        execution, store.load_graphs(execution_id), TakeUp.RESUME, False, RESUMABLE, here=True
    )
    assert claimed.status is E.STARTED and claimed.lease_owner == this_owner()
    assert claimed.runs == 1 and claimed.lease_token == execution.lease_token + 1
    assert statuses(store, execution_id) == {
        "a": "succeeded",
        "b": "pending",
        "c": "pending",
        "d": "started",
        "e": "pending",
    }
    assert store.task(execution_id, "c").retries == 0
    assert [event.type for event in written] == ["workflow_resumed", "task_reset", "task_reset"]


def test_a_person_resuming_a_crashed_execution_takes_it_over_and_resets_nothing(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    execution_id = crashed(store)
    execution = store.get_execution(execution_id)
    assert execution is not None and manual_take_up(execution) is TakeUp.RECOVER
    claimed, written = lifecycle.claim_resume(
        execution, store.load_graphs(execution_id), TakeUp.RECOVER, False, RESUMABLE, here=True
    )
    assert claimed.status is E.STARTED and claimed.lease_owner == this_owner()
    assert statuses(store, execution_id) == {k: v.value for k, v in STATES.items()}
    assert store.task(execution_id, "c").retries == 1  # its retry count is kept
    assert [event.type for event in written] == ["workflow_resumed"]


def test_reset_operations_on_a_crashed_execution_resets_interrupted_tasks_only(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    execution_id = crashed(store)
    execution = store.get_execution(execution_id)
    assert execution is not None
    lifecycle.claim_resume(
        execution, store.load_graphs(execution_id), TakeUp.RECOVER, True, RESUMABLE, here=True
    )
    found = statuses(store, execution_id)
    assert (found["b"], found["c"], found["d"]) == ("failed", "rescheduled", "pending")
    assert [end.outcome for end in store.attempt_ends] == ["interrupted"]


def test_a_resume_waits_in_queued_while_another_execution_holds_its_lock_key(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    holder = store.add_execution(E.STARTED, lock_key="site-1", lease_owner=this_owner())
    execution_id = failed(store, lock_key="site-1")
    execution = store.get_execution(execution_id)
    assert execution is not None
    claimed, _ = lifecycle.claim_resume(
        execution, store.load_graphs(execution_id), TakeUp.RESUME, False, RESUMABLE, here=True
    )
    assert claimed.status is E.QUEUED and claimed.lease_owner is None
    assert claimed.take_up == "resume" and claimed.runs == 0
    assert statuses(store, execution_id)["b"] == "pending"  # the resets are written now
    assert store.events[execution_id][-1].message == f"held by execution {holder.id}"


def test_a_resume_handed_to_a_manager_records_what_it_waits_for(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    execution_id = failed(store)
    execution = store.get_execution(execution_id)
    assert execution is not None
    claimed, _ = lifecycle.claim_resume(
        execution, store.load_graphs(execution_id), TakeUp.RESUME, False, RESUMABLE, here=False
    )
    assert claimed.status is E.PENDING and claimed.lease_owner is None
    assert take_up_of_claimed(claimed, False, True) is TakeUp.RESUME
    started = store.add_execution(E.PENDING, take_up="start")
    assert take_up_of_claimed(started, False, False) is TakeUp.START
    legacy = store.add_execution(E.PENDING)  # pending before migration 0008
    assert take_up_of_claimed(legacy, False, True) is TakeUp.RESUME
    assert take_up_of_claimed(legacy, False, False) is TakeUp.START
    cancelling = store.add_execution(E.CANCELLING)
    assert take_up_of_claimed(cancelling, True, True) is TakeUp.FINISH_CANCEL
    assert take_up_of_claimed(claimed, True, True) is TakeUp.TAKEOVER


def test_a_workflow_that_cannot_resume_fails_at_once_and_its_tasks_stay(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    execution_id = failed(store)
    execution = store.get_execution(execution_id)
    assert execution is not None
    definition = WorkflowDefinition("deploy", resumable=False)
    graphs = store.load_graphs(execution_id)
    claimed, _ = lifecycle.claim_resume(
        execution, graphs, TakeUp.RESUME, False, definition, here=True
    )
    run = lifecycle.open(claimed, "deploy", TakeUp.RESUME, graphs=graphs)

    def never(**_: Any) -> None:
        raise AssertionError("the workflow function must not run")

    outcome = lifecycle.run(run, claimed, TakeUp.RESUME, never, definition)
    assert outcome.status is E.FAILED
    assert outcome.error == "Cannot resume - workflow not resumable: flows:deploy"
    assert statuses(store, execution_id) == {k: v.value for k, v in STATES.items()}


def test_a_takeover_of_a_cancelling_execution_finishes_the_cancel(
    store: MemoryStore, lifecycle: Lifecycle
) -> None:
    record = store.add_execution(E.CANCELLING)
    claimed = store.claim(lifecycle.claim(record, record.status), [], [])
    assert claimed is not None
    run = lifecycle.open(claimed, "deploy", TakeUp.FINISH_CANCEL, graphs={})

    def never(**_: Any) -> None:
        raise AssertionError("a cancel's end runs no workflow")

    outcome = lifecycle.run(run, claimed, TakeUp.FINISH_CANCEL, never, RESUMABLE)
    assert outcome.status is E.CANCELLED
