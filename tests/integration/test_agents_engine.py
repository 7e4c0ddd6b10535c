"""Agent tasks on the manager side, on a real store (both backends): the test is the agent.

It claims, reports `started` and delivers results through `AgentService` (what the REST
routes call) while the execution runs in this process (`service.start` in a thread) or
in an in-process `Manager`. What is checked is what an operator sees: task states,
attempts, events, the execution's end state and error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WORKFLOWS
from dalsegno.engine.runner import EngineConfig
from dalsegno.manager.manager import Manager, ManagerConfig
from dalsegno.model.errors import ConflictError, NotFoundError
from dalsegno.service.agents import AgentService
from dalsegno.service.executions import ExecutionService, RunResult
from dalsegno.store import Store
from dalsegno.store.agent_records import AgentBeat, AgentReport

FLOWS = WORKFLOWS / "agent_server_flows.py"
REMOTE = f"{FLOWS}:remote"


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def ok(result: Any = None) -> AgentReport:
    return AgentReport("succeeded", None if result is None else _json(result), None, True, None)


def failed(error: str, recoverable: bool = True, outcome: str = "failed") -> AgentReport:
    return AgentReport(outcome, None, error, recoverable, None)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


class Running:
    """An execution run by `service.start` in a background thread."""

    def __init__(self, service: ExecutionService, workflow: str, params: dict[str, Any]) -> None:
        self.result: RunResult | None = None
        self.ids: list[str] = []
        self.thread = threading.Thread(
            target=self._run, args=(service, workflow, params), daemon=True
        )
        self.thread.start()
        wait_for(lambda: bool(self.ids))
        self.id = self.ids[0]

    def _run(self, service: ExecutionService, workflow: str, params: dict[str, Any]) -> None:
        self.result = service.start(workflow, params, on_created=self.ids.append)

    def end(self, timeout: float = 15.0) -> tuple[str, str | None]:
        self.thread.join(timeout)
        assert self.result is not None, "the execution did not end"
        status = self.result.outcome.status
        assert status is not None
        return status.value, self.result.outcome.error


@pytest.fixture
def agent_service(store: Store) -> AgentService:
    return AgentService(ExecutionService(store))


@pytest.fixture
def make_service(store: Store) -> Callable[..., ExecutionService]:
    def make(agent_timeout: float = 30.0, lease_timeout: float = 3.0) -> ExecutionService:
        config = EngineConfig(
            concurrency=4,
            lease_timeout=lease_timeout,
            poll_interval=0.05,
            agent_timeout=agent_timeout,
        )
        return ExecutionService(store, config)

    return make


def claim_one(agents: AgentService, agent: str = "a1", queue: str = "web") -> dict[str, Any]:
    (found,) = agents.claim(queue, agent, 1, 10.0)
    return found


def task_of(store: Store, execution_id: str, key: str = "t") -> Any:
    return next(task for task in store.list_tasks(execution_id) if task.key == key)


def attempts_of(store: Store, execution_id: str, key: str = "t") -> list[Any]:
    task = task_of(store, execution_id, key)
    return [a for a in store.list_attempts(execution_id) if a.task_id == task.id]


def messages(store: Store, execution_id: str) -> list[str]:
    return [event.message for event in store.list_events(execution_id)]


# the first path --------------------------------------------------------------------------


def test_claim_started_result_completes_the_execution(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(), REMOTE, {})
    began = time.monotonic()
    assignment = claim_one(agent_service)
    assert time.monotonic() - began < 5  # the long-poll returned when the task was sent
    assert assignment["task_key"] == "t"
    assert assignment["operation"] == f"{FLOWS}:touch"
    assert assignment["kwargs"] == {"path": ""}
    assert (assignment["retries"], assignment["resume"], assignment["process"]) == (0, False, False)
    assert task_of(store, running.id).status.value == "sent"  # claimed tasks stay sent

    started = agent_service.start(assignment["attempt_id"], "a1")
    assert started == {"attempt_id": assignment["attempt_id"], "status": "started"}
    assert task_of(store, running.id).status.value == "started"
    assert agent_service.start(assignment["attempt_id"], "a1") == started  # a repeat is harmless
    answer = agent_service.report(assignment["attempt_id"], "a1", ok({"built": 1}))
    assert answer == {"attempt_id": assignment["attempt_id"], "accepted": True}

    assert running.end() == ("completed", None)
    task = task_of(store, running.id)
    assert (task.status.value, task.result) == ("succeeded", {"built": 1})
    (attempt,) = attempts_of(store, running.id)
    assert (attempt.outcome, attempt.worker) == ("succeeded", "agent a1")
    assert "Task started 't' on agent a1" in messages(store, running.id)
    # delivered again after it was applied: still harmless, nothing changes
    assert agent_service.report(assignment["attempt_id"], "a1", ok({"built": 2}))["accepted"]
    assert task_of(store, running.id).result == {"built": 1}


def test_result_logs_become_events_of_the_task(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    from dalsegno.store.agent_records import AgentLog

    running = Running(make_service(), REMOTE, {})
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    report = ok()
    report.logs = [AgentLog("warning", "disk almost full", time.time())]
    agent_service.report(assignment["attempt_id"], "a1", report)
    assert running.end()[0] == "completed"
    logs = [e for e in store.list_events(running.id) if e.type == "log"]
    assert [(e.task_key, e.level, e.message) for e in logs] == [
        ("t", "warning", "disk almost full")
    ]


def test_a_claim_that_finds_nothing_waits_then_answers_empty(
    agent_service: AgentService,
) -> None:
    began = time.monotonic()
    assert agent_service.claim("web", "a1", 1, 0.3) == []
    assert 0.25 < time.monotonic() - began < 3


def test_started_and_result_refusals(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(), REMOTE, {})
    assignment = claim_one(agent_service)
    attempt = assignment["attempt_id"]
    with pytest.raises(NotFoundError):
        agent_service.start("no-such-attempt", "a1")
    with pytest.raises(NotFoundError):
        agent_service.report("no-such-attempt", "a1", ok())
    with pytest.raises(NotFoundError):
        agent_service.queue_of("no-such-attempt")
    assert agent_service.queue_of(attempt) == "web"
    with pytest.raises(ConflictError):  # another agent
        agent_service.start(attempt, "a2")
    with pytest.raises(ConflictError):  # a result before `started`
        agent_service.report(attempt, "a1", ok())
    agent_service.start(attempt, "a1")
    with pytest.raises(ConflictError):  # another agent's result
        agent_service.report(attempt, "a2", ok())
    assert task_of(store, running.id).status.value == "started"
    agent_service.report(attempt, "a1", ok())
    assert running.end()[0] == "completed"


# retries and failures --------------------------------------------------------------------


def test_a_failed_attempt_is_retried_under_a_new_attempt_id(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(), REMOTE, {"retries": 1})
    first = claim_one(agent_service)
    agent_service.start(first["attempt_id"], "a1")
    agent_service.report(first["attempt_id"], "a1", failed("RuntimeError: flaky"))
    second = claim_one(agent_service, "a2")
    assert second["attempt_id"] != first["attempt_id"]
    assert (second["retries"], second["resume"]) == (1, False)
    agent_service.start(second["attempt_id"], "a2")
    agent_service.report(second["attempt_id"], "a2", ok())
    assert running.end() == ("completed", None)
    outcomes = [(a.outcome, a.worker, a.error) for a in attempts_of(store, running.id)]
    assert outcomes == [
        ("failed", "agent a1", "RuntimeError: flaky"),
        ("succeeded", "agent a2", None),
    ]


def test_a_non_recoverable_failure_is_not_retried_and_fails_the_execution(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(), REMOTE, {"retries": 3})
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    agent_service.report(
        assignment["attempt_id"], "a1", failed("NonRecoverableError: no", recoverable=False)
    )
    status, error = running.end()
    assert status == "failed"
    assert error == (f"1 task failed in graph 'main': 't' ({FLOWS}:touch): NonRecoverableError: no")
    assert task_of(store, running.id, "after").status.value == "pending"  # never ran


def test_a_retry_request_uses_a_retry(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(), REMOTE, {"retries": 1})
    first = claim_one(agent_service)
    agent_service.start(first["attempt_id"], "a1")
    agent_service.report(first["attempt_id"], "a1", failed("OperationRetry: later", True, "retry"))
    second = claim_one(agent_service)
    assert second["retries"] == 1
    agent_service.start(second["attempt_id"], "a1")
    agent_service.report(second["attempt_id"], "a1", ok())
    assert running.end()[0] == "completed"


# concurrent claims -----------------------------------------------------------------------


def test_concurrent_claims_never_hand_a_task_out_twice(
    make_service: Callable[..., ExecutionService], store: Store, store_url: str, backend: str
) -> None:

    count = 60
    running = Running(make_service(), f"{FLOWS}:fan", {"count": count})
    wait_for(lambda: store.count_tasks_by_status(running.id).get("sent", 0) == count)

    def claimer(agents: AgentService, index: int) -> list[str]:
        mine: list[str] = []
        while True:
            found = agents.claim("web", f"agent-{index}", 2, 0)
            if not found:
                return mine
            mine += [assignment["task_key"] for assignment in found]

    claimed = race(store_url, claimer)
    keys = [key for mine in claimed for key in mine]
    assert len(keys) == len(set(keys)) == count
    if backend == "postgres":  # SKIP LOCKED: the claims really ran side by side
        assert sum(1 for mine in claimed if mine) > 1
    store.request_cancel(running.id, _state("force_cancelling"), [])
    running.end()


def race(store_url: str, agent: Callable[[AgentService, int], list[str]]) -> list[list[str]]:
    """Six `agent(service, index)` at once, each through a store of its own (separate
    connections, as managers), released together; what each returned."""
    from dalsegno.store import open_store

    stores = [open_store(store_url) for _ in range(6)]
    for opened in stores:
        opened.agent_token_queue("warm-up")  # connected before the race
    together = threading.Barrier(6)
    found: list[list[str]] = []

    def run(index: int) -> None:
        agents = AgentService(ExecutionService(stores[index]))
        together.wait()
        found.append(agent(agents, index))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for opened in stores:
            opened.close()
    return found


def _state(name: str) -> Any:
    from dalsegno.model.states import ExecutionState

    return ExecutionState(name)


# heartbeats and lost agents --------------------------------------------------------------


def beat(agents: AgentService, attempts: list[str], agent: str = "a1") -> dict[str, Any]:
    return agents.heartbeat(AgentBeat("web", agent, "host-1", 4242, 2, attempts))


def test_heartbeats_keep_an_agent_alive_past_the_timeout(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(agent_timeout=0.6), REMOTE, {})
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    until = time.monotonic() + 2.0
    while time.monotonic() < until:
        assert beat(agent_service, [assignment["attempt_id"]]) == {
            "kill": [],
            "unknown": [],
            "interval": 2.0,
            "waiting_beats": True,
        }
        time.sleep(0.1)
    agent_service.report(assignment["attempt_id"], "a1", ok())
    assert running.end() == ("completed", None)
    (agent,) = agent_service.list_agents()
    assert (agent.name, agent.queue, agent.host, agent.pid, agent.running) == (
        "a1",
        "web",
        "host-1",
        4242,
        [],
    )


def test_an_agent_restarted_under_its_name_does_not_keep_old_attempts_alive(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(agent_timeout=0.6), REMOTE, {"op": "again"})
    first = claim_one(agent_service)
    agent_service.start(first["attempt_id"], "a1")
    # a1 restarts (same --name): its beats go on, but list none of its predecessor's attempts
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        beat(agent_service, [])
        time.sleep(0.1)
    second = claim_one(agent_service)
    assert (second["resume"], second["attempt_id"] != first["attempt_id"]) == (True, True)
    agent_service.start(second["attempt_id"], "a1")
    agent_service.report(second["attempt_id"], "a1", ok())
    assert running.end() == ("completed", None)
    assert [a.outcome for a in attempts_of(store, running.id)] == ["lost", "succeeded"]


def test_a_lost_agent_requeues_a_resumable_operation(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(agent_timeout=0.5), REMOTE, {"op": "again"})
    first = claim_one(agent_service)
    agent_service.start(first["attempt_id"], "a1")
    # a1 sends no heartbeat: after 0.5 s its attempt is lost and the task queued again
    second = claim_one(agent_service, "a2")
    assert second["attempt_id"] != first["attempt_id"]
    assert second["resume"] is True
    with pytest.raises(ConflictError):  # the lost attempt's late result is refused
        agent_service.report(first["attempt_id"], "a1", ok())
    assert beat(agent_service, [first["attempt_id"]])["unknown"] == [first["attempt_id"]]
    agent_service.start(second["attempt_id"], "a2")
    agent_service.report(second["attempt_id"], "a2", ok())
    assert running.end() == ("completed", None)
    outcomes = [(a.outcome, a.worker) for a in attempts_of(store, running.id)]
    assert outcomes == [("lost", "agent a1"), ("succeeded", "agent a2")]
    assert any("Agent a1 missed its heartbeats" in m for m in messages(store, running.id))


def test_a_lost_agent_fails_a_non_resumable_operation(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(agent_timeout=0.5), REMOTE, {})
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    status, error = running.end()
    reason = f"operation interrupted on agent a1 and not resumable: t ({FLOWS}:touch)"
    assert status == "failed"
    assert error == f"1 task failed in graph 'main': 't' ({FLOWS}:touch): {reason}"
    task = task_of(store, running.id)
    assert (task.status.value, task.error) == ("failed", reason)


def test_a_lost_claim_that_never_started_goes_back_to_the_queue(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    running = Running(make_service(agent_timeout=0.5), REMOTE, {})
    first = claim_one(agent_service)
    second = claim_one(agent_service, "a2")  # a1 never started it, and stayed silent
    assert second["resume"] is False
    # a claim that never started leaves no attempt behind: its id is unknown now (404),
    # and the agent drops it as it drops a 409
    with pytest.raises(NotFoundError):
        agent_service.start(first["attempt_id"], "a1")
    assert beat(agent_service, [first["attempt_id"]])["unknown"] == [first["attempt_id"]]
    agent_service.start(second["attempt_id"], "a2")
    agent_service.report(second["attempt_id"], "a2", ok())
    assert running.end() == ("completed", None)
    assert [a.worker for a in attempts_of(store, running.id)] == ["agent a2"]


# cancel ----------------------------------------------------------------------------------


def test_kill_cancel_fails_a_started_agent_task_and_tells_its_agent(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    service = make_service()
    running = Running(service, REMOTE, {})
    assignment = claim_one(agent_service)
    attempt = assignment["attempt_id"]
    agent_service.start(attempt, "a1")
    service.cancel(running.id, "kill")
    assert running.end() == ("cancelled", None)
    task = task_of(store, running.id)
    assert (task.status.value, task.error) == ("failed", "killed by cancel")
    assert beat(agent_service, [attempt]) == {
        "kill": [attempt],
        "unknown": [],
        "interval": 2.0,
        "waiting_beats": True,
    }
    with pytest.raises(ConflictError):
        agent_service.report(attempt, "a1", ok())
    assert [a.outcome for a in attempts_of(store, running.id)] == ["killed"]


def test_force_cancel_leaves_the_agent_task_and_records_its_late_result(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    service = make_service()
    running = Running(service, REMOTE, {})
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    service.cancel(running.id, "force")
    assert running.end() == ("cancelled", None)
    assert agent_service.report(assignment["attempt_id"], "a1", ok({"late": True}))["accepted"]
    assert task_of(store, running.id).status.value == "started"  # no outcome changes
    (attempt,) = attempts_of(store, running.id)
    assert attempt.outcome == "succeeded"
    assert any("ended after it was abandoned" in m for m in messages(store, running.id))
    assert service.find(running.id).status.value == "cancelled"


def test_plain_cancel_waits_for_a_started_agent_task(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    service = make_service()
    running = Running(service, REMOTE, {})
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    service.cancel(running.id, "cancel")
    time.sleep(0.5)
    assert service.find(running.id).status.value == "cancelling"  # it waits for the agent
    agent_service.report(assignment["attempt_id"], "a1", ok())
    assert running.end() == ("cancelled", None)
    assert task_of(store, running.id).status.value == "succeeded"
    assert task_of(store, running.id, "after").status.value == "pending"


def test_a_claimed_task_does_not_start_after_a_cancel(
    make_service: Callable[..., ExecutionService], agent_service: AgentService, store: Store
) -> None:
    service = make_service()
    running = Running(service, REMOTE, {})
    assignment = claim_one(agent_service)
    service.cancel(running.id, "cancel")
    assert running.end() == ("cancelled", None)
    with pytest.raises(ConflictError):
        agent_service.start(assignment["attempt_id"], "a1")
    task = task_of(store, running.id)
    assert task.status.value == "sent"  # a resume awaits it again
    assert attempts_of(store, running.id) == []


# takeover ----------------------------------------------------------------------------------


@pytest.fixture
def managers(store: Store) -> Iterator[Callable[..., Manager]]:
    started: list[Manager] = []

    def make(agent_timeout: float = 30.0) -> Manager:
        config = EngineConfig(
            concurrency=4, lease_timeout=1.0, poll_interval=0.05, agent_timeout=agent_timeout
        )
        manager = Manager(ExecutionService(store, config), ManagerConfig(grace=0.0))
        manager.start()
        started.append(manager)
        return manager

    yield make
    for manager in started:
        manager.stop(0.2)


def test_a_result_delivered_while_no_manager_runs_is_applied_on_takeover(
    managers: Callable[..., Manager], agent_service: AgentService, store: Store, tmp_path: Path
) -> None:
    service = ExecutionService(store)
    execution = service.create(REMOTE, {"op": "again"})
    first = managers()
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    first.stop(0.0)  # hands the execution over: its lease is released
    agent_service.report(assignment["attempt_id"], "a1", ok({"from": "a1"}))
    managers(agent_timeout=60.0)
    wait_for(lambda: service.find(execution.id).status.value == "completed")
    assert task_of(store, execution.id).result == {"from": "a1"}
    assert [a.outcome for a in attempts_of(store, execution.id)] == ["succeeded"]


def test_a_takeover_awaits_a_healthy_agent_however_long_the_manager_was_down(
    managers: Callable[..., Manager], agent_service: AgentService, store: Store
) -> None:
    service = ExecutionService(store)
    execution = service.create(REMOTE, {})
    first = managers(agent_timeout=1.0)
    assignment = claim_one(agent_service)
    agent_service.start(assignment["attempt_id"], "a1")
    first.stop(0.0)
    time.sleep(1.5)  # the manager is down longer than the agent timeout; no heartbeat came
    managers(agent_timeout=1.0)
    time.sleep(0.5)  # the new owner counts from its takeover: not lost yet
    beat(agent_service, [assignment["attempt_id"]])
    assert task_of(store, execution.id).status.value == "started"
    agent_service.report(assignment["attempt_id"], "a1", ok())
    wait_for(lambda: service.find(execution.id).status.value == "completed")
