"""The second agent protocol on a real store (both backends): one exchange delivers
results and claims tasks that are `started` when it answers. The test is the agent,
through `AgentService` (what `POST /agents/exchange` calls), while the execution runs in
this process; what is checked is what an operator sees: states, attempts, events."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.processes import Cluster
from dalsegno.engine.runner import EngineConfig
from dalsegno.service.agents import AgentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store
from dalsegno.store.agent_records import AgentReport, Delivery, Exchange
from integration.test_agents_engine import (
    FLOWS,
    REMOTE,
    Running,
    attempts_of,
    messages,
    race,
    task_of,
    wait_for,
)

OK = AgentReport("succeeded", json.dumps({"ok": 1}), None, True, None)
RELEASED = AgentReport("released", None, None, True, None)


@pytest.fixture
def make_service(store: Store) -> Callable[..., ExecutionService]:
    def make(agent_timeout: float = 30.0) -> ExecutionService:
        config = EngineConfig(
            concurrency=4, lease_timeout=3.0, poll_interval=0.05, agent_timeout=agent_timeout
        )
        return ExecutionService(store, config)

    return make


def exchange(
    agents: AgentService,
    results: list[tuple[str, AgentReport]] = (),  # type: ignore[assignment]
    limit: int = 1,
    agent: str = "a1",
    queue: str = "web",
    claim_id: str = "claim0001",
    repeat: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    call = Exchange(queue, agent, [Delivery(a, r) for a, r in results], limit, claim_id, repeat)
    agents.check_exchange(call, 0)
    return agents.exchange(call)


def claim(agents: AgentService, **options: Any) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def claimed() -> bool:
        found.extend(exchange(agents, **options)[1])
        return bool(found)

    wait_for(claimed)
    (assignment,) = found
    return assignment


def test_a_claim_starts_its_task_and_the_next_call_delivers_its_result(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service()
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    assignment = claim(agents)
    assert assignment["attempt_id"] == f"claim0001-{task_of(store, running.id).id}"
    assert (assignment["attempt"], assignment["resume"]) == (0, False)
    task = task_of(store, running.id)
    assert task.status.value == "started"  # durable before the agent has its answer
    ((outcome, worker),) = [(a.outcome, a.worker) for a in attempts_of(store, running.id)]
    assert (outcome, worker) == ("running", "agent a1")
    assert "Task started 't' on agent a1" in messages(store, running.id)
    answers, more = exchange(agents, [(assignment["attempt_id"], OK)], claim_id="claim0002")
    assert answers == [{"attempt_id": assignment["attempt_id"], "status": "accepted"}]
    assert more == []
    assert running.end() == ("completed", None)
    assert task_of(store, running.id).result == {"ok": 1}
    again, _ = exchange(agents, [(assignment["attempt_id"], OK)], limit=0, claim_id="claim0003")
    assert again[0]["status"] == "duplicate"  # a second delivery changes nothing


def test_a_claim_repeated_after_a_lost_answer_gets_back_what_it_started(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service()
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    first = claim(agents, claim_id="lostanswer1")
    _, again = exchange(agents, claim_id="lostanswer1", repeat=True)
    assert [task["attempt_id"] for task in again] == [first["attempt_id"]]
    assert exchange(agents, claim_id="otherclaim1")[1] == []  # started once, held by a1
    exchange(agents, [(first["attempt_id"], OK)], limit=0, claim_id="otherclaim2")
    assert running.end() == ("completed", None)
    assert len(attempts_of(store, running.id)) == 1


def test_a_result_for_another_queue_or_agent_is_refused_and_changes_nothing(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service()
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    assignment = claim(agents)
    attempt_id = assignment["attempt_id"]
    other_queue, _ = exchange(agents, [(attempt_id, OK)], limit=0, queue="db")
    other_agent, _ = exchange(agents, [(attempt_id, OK)], limit=0, agent="a2")
    unknown, _ = exchange(agents, [("nosuch-1", OK)], limit=0)
    assert [answer["status"] for answer in other_queue + other_agent + unknown] == [
        "unknown",
        "conflict",
        "unknown",
    ]
    assert task_of(store, running.id).status.value == "started"
    exchange(agents, [(attempt_id, OK)], limit=0)
    assert running.end() == ("completed", None)


def test_a_released_task_is_queued_again_and_uses_no_retry(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service()
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    first = claim(agents)
    exchange(agents, [(first["attempt_id"], RELEASED)], limit=0, claim_id="releasing")
    second = claim(agents, agent="a2", claim_id="secondone")
    assert (second["retries"], second["resume"], second["attempt"]) == (0, False, 1)
    exchange(agents, [(second["attempt_id"], OK)], limit=0, agent="a2", claim_id="deliver2")
    assert running.end() == ("completed", None)
    outcomes = [(a.outcome, a.worker) for a in attempts_of(store, running.id)]
    assert outcomes == [("released", "agent a1"), ("succeeded", "agent a2")]
    assert "Agent a1 released task 't' unstarted: queued again" in messages(store, running.id)


def test_no_claim_starts_a_task_once_the_execution_is_cancelled(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service()
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    wait_for(
        lambda: [t.status.value for t in store.list_tasks(running.id) if t.key == "t"] == ["sent"]
    )
    service.cancel(running.id, "cancel")
    assert running.end() == ("cancelled", None)
    assert exchange(agents)[1] == []
    assert task_of(store, running.id).status.value == "sent"  # a resume sends it again
    assert attempts_of(store, running.id) == []


def test_a_silent_agent_loses_a_task_its_claim_started(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service(agent_timeout=0.5)
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    claim(agents)  # and never a heartbeat, nor a result: a1 died holding it
    status, error = running.end()
    reason = f"operation interrupted on agent a1 and not resumable: t ({FLOWS}:touch)"
    assert status == "failed"
    assert error == f"1 task failed in graph 'main': 't' ({FLOWS}:touch): {reason}"
    assert [a.outcome for a in attempts_of(store, running.id)] == ["lost"]


def resumed(service: ExecutionService, execution_id: str, **options: Any) -> threading.Thread:
    """`executions resume ID` run to its end in a background thread."""
    thread = threading.Thread(
        target=service.resume, args=(execution_id,), kwargs=options, daemon=True
    )
    thread.start()
    return thread


def test_a_lost_resumable_attempt_is_claimed_again_with_resume_true(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service(agent_timeout=0.5)
    agents = AgentService(service)
    running = Running(service, REMOTE, {"op": "again"})
    first = claim(agents)  # a1 dies holding it: lost, and queued again (resumable)
    second = claim(agents, agent="a2", claim_id="secondone")
    assert (second["resume"], second["attempt"], second["retries"]) == (True, 1, 0)
    exchange(agents, [(second["attempt_id"], OK)], limit=0, agent="a2", claim_id="deliver2")
    assert running.end() == ("completed", None)
    assert [a.outcome for a in attempts_of(store, running.id)] == ["lost", "succeeded"]
    assert first["resume"] is False


def test_a_manual_resume_after_a_lost_attempt_runs_the_task_afresh(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service(agent_timeout=0.5)
    agents = AgentService(service)
    running = Running(service, REMOTE, {})
    claim(agents)  # a1 dies holding it: not resumable, the execution fails
    assert running.end()[0] == "failed"
    thread = resumed(service, running.id)  # the operator has checked: the task is reset
    second = claim(agents, agent="a2", claim_id="secondone")
    assert (second["resume"], second["attempt"]) == (False, 1)  # a fresh run, as manager-side
    exchange(agents, [(second["attempt_id"], OK)], limit=0, agent="a2", claim_id="deliver2")
    thread.join(15)
    assert service.find(running.id).status.value == "completed"
    assert [a.outcome for a in attempts_of(store, running.id)] == ["lost", "succeeded"]


def test_reset_operations_after_an_abandoned_attempt_runs_the_task_afresh(
    make_service: Callable[..., ExecutionService], store: Store
) -> None:
    service = make_service()
    agents = AgentService(service)
    running = Running(service, REMOTE, {"op": "again"})
    claim(agents)
    service.cancel(running.id, "force")  # the task stays started on a1
    assert running.end() == ("cancelled", None)
    thread = resumed(service, running.id, reset_operations=True)
    second = claim(agents, agent="a2", claim_id="secondone")
    assert (second["resume"], second["attempt"]) == (False, 1)  # reset: not a resume
    exchange(agents, [(second["attempt_id"], OK)], limit=0, agent="a2", claim_id="deliver2")
    thread.join(15)
    assert service.find(running.id).status.value == "completed"
    assert [a.outcome for a in attempts_of(store, running.id)] == ["interrupted", "succeeded"]


def test_a_claim_whose_agent_went_away_while_it_waited_starts_nothing(
    home: Path, tmp_path: Path
) -> None:
    cluster = Cluster(home, tmp_path)
    try:
        cluster.start_manager()
        body = json.dumps(
            {"queue": "web", "agent": "gone", "limit": 1, "wait": 30, "claim_id": "goneagent1"}
        ).encode()
        waiting = socket.create_connection(("127.0.0.1", cluster.port))
        waiting.sendall(
            b"POST /api/v1/agents/exchange HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {cluster.token}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.5)  # its long-poll waits on the manager
        waiting.close()  # the agent is gone (stopped, killed): its connection is closed
        execution_id = cluster.start("agent_server_flows:remote")
        wait_for(
            lambda: (
                [t["status"] for t in cluster.get(execution_id)["tasks"] if t["key"] == "t"]
                == ["sent"]
            )
        )
        time.sleep(1.5)  # the woken long-poll of the gone agent had its chance
        assert cluster.task(execution_id, "t")["status"] == "sent"
        answer = cluster.post(
            "/agents/exchange",
            {"queue": "web", "agent": "a1", "limit": 1, "claim_id": "liveagent1"},
        )
        found = answer.json()["tasks"]
        assert found, (answer.json(), cluster.task(execution_id, "t"), cluster.get_agents())
        assert [task["task_key"] for task in found] == ["t"]
    finally:
        cluster.stop_all()


@pytest.mark.postgres_only("the plan of PostgreSQL's one-statement claim")
def test_a_claim_reads_the_rows_it_takes_not_every_unheld_task(
    make_service: Callable[..., ExecutionService], store: Store, store_url: str
) -> None:
    """The claim's UPDATE finds the rows its CTE picked by their key. On a store that
    PostgreSQL had not analyzed since it filled, the UPDATE scanned every unheld task
    (`holder IS NULL`) for them: 2,000 rows per claim of one task, 0.8 ms each, which
    grew with the queue (benchmarks/agents.py, 1 agent x 1 slot)."""
    import psycopg

    from dalsegno.model.states import ExecutionState
    from dalsegno.store.agent_pgexchange import _CLAIM

    count = 300
    service = ExecutionService(
        store, EngineConfig(concurrency=count, lease_timeout=3.0, poll_interval=0.05)
    )
    running = Running(service, f"{FLOWS}:fan", {"count": count})
    wait_for(lambda: store.count_tasks_by_status(running.id).get("sent", 0) == count)
    params = {
        "queue": "web",
        "agent": "a1",
        "prefix": "planclaim-",
        "now": time.time(),
        "sent": "sent",
        "started": "started",
        "running": "started",
        "limit": 1,
    }
    with psycopg.connect(store_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        # a generic plan, as a prepared statement (psycopg prepares it) gets after 5 runs
        pg.execute("SET plan_cache_mode = force_generic_plan")
        (document,) = pg.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + _CLAIM, params, prepare=False
        ).fetchone()
        pg.rollback()  # EXPLAIN ANALYZE ran the UPDATE: nothing of it stays

    def scans(node: dict[str, Any]) -> list[tuple[str, int]]:
        found = []
        if node.get("Relation Name") == "tasks":
            found.append((node["Node Type"], node["Actual Rows"] * node["Actual Loops"]))
        for child in node.get("Plans", []):
            found += scans(child)
        return found

    read = scans(document[0]["Plan"])
    assert read and all(rows <= 1 for _, rows in read), read
    assert store.count_tasks_by_status(running.id).get("sent", 0) == count
    store.request_cancel(running.id, ExecutionState.FORCE_CANCELLING, [])
    running.end()


@pytest.mark.postgres_only("PostgreSQL's prepared statements and their plans")
def test_an_exchange_of_one_result_runs_on_kept_plans_between_reads(
    store: Store, store_url: str
) -> None:
    """A slot's exchange (one result, one claim) is prepared once on its connection and
    runs on a kept plan, while the owner reads in between on the same pool.

    Two things had every exchange parsed and planned anew, 0.4 ms of PostgreSQL's time
    on a slot's path: a read ended with the pool's ROLLBACK, at which psycopg forgets what
    it prepared on the connection; and the delivered attempt was looked up with
    `= ANY(array)`, which PostgreSQL plans afresh at every call."""
    from dalsegno.store import open_store

    count = 60
    service = ExecutionService(
        store, EngineConfig(concurrency=count, lease_timeout=3.0, poll_interval=0.05)
    )
    running = Running(service, f"{FLOWS}:fan", {"count": count})
    wait_for(lambda: store.count_tasks_by_status(running.id).get("sent", 0) == count)
    # The agents' side on a store of its own. Its pool holds this thread's connection and
    # the one its NOTIFY of results takes in between, so the calls spread over both, in
    # shares that depend on timing: every connection of the pool is looked at.
    own = open_store(store_url)
    try:
        agents = AgentService(ExecutionService(own))
        held: str | None = None
        for number in range(count + 1):
            results = [(held, OK)] if held else []
            _, tasks = exchange(agents, results, claim_id=f"kept{number:04d}")
            own.read_status(running.id)  # a read in between, on the same pool
            held = tasks[0]["attempt_id"] if tasks else None
        engine: Any = own._write_engine  # type: ignore[attr-defined]
        pooled = engine.pool.checkedin()
        with contextlib.ExitStack() as stack:  # all at once: each a connection of its own
            connections = [stack.enter_context(engine.connect()) for _ in range(pooled)]
            rows = [
                row
                for conn in connections
                for row in conn.exec_driver_sql(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                ).all()
            ]
    finally:
        own.close()
    kept = {row.statement.split("\n")[0][:60]: row for row in rows}
    for name, marks in (("lookup", "SELECT attempts.attempt_id"), ("claim", "WITH picked AS")):
        found = [row for row in rows if marks in row.statement]
        assert found, (name, kept)
        # per connection: psycopg runs a statement 5 times before it prepares it, then
        # PostgreSQL makes 5 custom plans before it keeps the generic one
        assert all(row.custom_plans <= 5 for row in found), (name, found)
        generic = sum(row.generic_plans for row in found)
        assert generic >= count - 10 * pooled, (name, pooled, found)
    assert running.end()[0] == "completed"


def test_concurrent_exchanges_never_start_a_task_twice(
    make_service: Callable[..., ExecutionService], store: Store, store_url: str, backend: str
) -> None:
    """Six agents exchange at once, each through a store of its own (separate connections,
    as managers): every task is started by one claim only."""
    from dalsegno.model.states import ExecutionState

    count = 60
    service = ExecutionService(
        store, EngineConfig(concurrency=count, lease_timeout=3.0, poll_interval=0.05)
    )
    running = Running(service, f"{FLOWS}:fan", {"count": count})
    wait_for(lambda: store.count_tasks_by_status(running.id).get("sent", 0) == count)

    def agent(agents: AgentService, index: int) -> list[str]:
        mine: list[str] = []
        for call in range(count):
            _, tasks = exchange(
                agents, limit=2, agent=f"agent-{index}", claim_id=f"race{index}x{call:04d}"
            )
            if not tasks:
                break
            mine += [task["task_key"] for task in tasks]
        return mine

    started = race(store_url, agent)
    keys = [key for mine in started for key in mine]
    assert len(keys) == len(set(keys)) == count
    assert store.count_tasks_by_status(running.id).get("started", 0) == count
    if backend == "postgres":  # SKIP LOCKED: the exchanges really ran side by side
        assert sum(1 for mine in started if mine) > 1
    store.request_cancel(running.id, ExecutionState.FORCE_CANCELLING, [])
    running.end()
