"""The agent's modules against a stub manager (a real HTTP server in this process): the
order of its calls, the outbox, backoff, refusals, kill, timeout, slots, graceful stop."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.stub import StubManager, assignment, stub_manager
from conftest import WORKFLOWS
from dalsegno.agent import Agent, AgentConfig
from dalsegno.agent.delivery import Backoff
from dalsegno.agent.outbox import Outbox, outbox_path
from dalsegno.agent.worker import AgentFailed

FLOWS = str(WORKFLOWS / "agent_flows.py")


def ref(name: str) -> str:
    return f"{FLOWS}:{name}"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def runs(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


class Running:
    """An agent running in a thread of the test."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.failed: AgentFailed | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.agent.run()
        except AgentFailed as exc:
            self.failed = exc

    def stop(self, timeout: float = 15.0) -> None:
        self.agent.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive()


@pytest.fixture
def stub() -> Iterator[StubManager]:
    with stub_manager() as running:
        yield running


@pytest.fixture
def start_agent(stub: StubManager, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**options: Any) -> Running:
        config: dict[str, Any] = {
            "manager_url": stub.url,
            "token": "t",
            "queue": "web",
            "home": tmp_path / "agent-home",
            "name": "a1",
            "heartbeat_interval": 0.1,
            "claim_wait": 0.5,
            "backoff_cap": 0.5,
            "grace": 2.0,
        }
        config.update(options)
        running = Running(Agent(AgentConfig(**config)))
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def results(stub: StubManager) -> list[dict[str, Any]]:
    return [body for _, body in stub.results()]


def outbox_rows(home: Path) -> list[str]:
    path = outbox_path(home, "web")
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT attempt_id FROM results")]


def test_the_operation_runs_only_after_the_claim_that_started_it_answered(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    stub.exchange_delay = 0.5  # the manager is slow to answer the claim that started x1
    stub.queue(**assignment("x1", ref("step"), kwargs={"log": str(log), "value": 7}))
    start_agent()
    wait_for(lambda: len(results(stub)) == 1)
    asked_at, claim = stub.claims()[0]
    assert claim["queue"] == "web"
    assert claim["agent"] == "a1"
    assert (claim["limit"], claim["results"]) == (1, [])
    # a long-poll waits 80-100% of claim_wait (0.5 here): a fleet spreads its renewals
    assert 0.8 * 0.5 <= claim["wait"] <= 0.5
    (run,) = runs(log)
    assert run["at"] >= asked_at + 0.5  # the first line ran after the answer came back
    (body,) = results(stub)
    assert body["attempt_id"] == "x1"
    assert body["agent"] == "a1"
    assert body["outcome"] == "succeeded"
    assert body["result"] == {"done": "x1", "value": 7}
    assert [line["message"] for line in body["logs"]] == ["step x1 ran"]
    assert body["logs"][0]["level"] == "info"
    beats = [body for _, body in stub.paths("/agents/heartbeat")]
    assert {"queue", "agent", "host", "pid", "concurrency", "attempts"} <= set(beats[0])


def test_results_finished_together_go_in_one_call_with_the_next_claim(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    for index in range(4):
        stub.queue(**assignment(f"x{index}", ref("step"), kwargs={"log": str(log)}))
    start_agent(concurrency=4)
    wait_for(lambda: len(results(stub)) == 4)
    carrying = [body for _, body in stub.paths("/agents/exchange") if body["results"]]
    assert len(carrying) < 4  # batched: fewer calls than results
    assert sorted(result["attempt_id"] for result in results(stub)) == ["x0", "x1", "x2", "x3"]
    assert all(body["limit"] for body in carrying[:1])  # the first rode with a claim
    claim_ids = [body["claim_id"] for _, body in stub.paths("/agents/exchange")]
    assert len(set(claim_ids)) == len(claim_ids)  # a new claim id for each answered call


def test_a_claim_whose_answer_was_lost_is_asked_again_under_the_same_id(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    stub.claim_status = 503  # the manager is restarting
    start_agent()
    wait_for(lambda: len(stub.claims()) >= 3)
    stub.claim_status = 200
    ids = [body["claim_id"] for _, body in stub.claims()]
    assert len(set(ids[:3])) == 1  # what the lost claim took comes back with the same id
    assert [body["repeat"] for _, body in stub.claims()][:3] == [False, True, True]
    stub.queue(**assignment("x1", ref("step"), kwargs={"log": str(tmp_path / "runs.log")}))
    wait_for(lambda: len(results(stub)) == 1)


def test_an_assignment_that_arrives_as_the_agent_stops_is_released_not_run(
    stub: StubManager, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    agent = Agent(
        AgentConfig(manager_url=stub.url, token="t", queue="web", home=tmp_path / "h", name="a1")
    )
    agent.stop()
    agent._take(assignment("x1", ref("step"), kwargs={"log": str(log)}))
    agent._keep()
    (kept,) = agent.outbox.pending()
    assert (kept.attempt_id, kept.body["outcome"], kept.body["agent"]) == ("x1", "released", "a1")
    time.sleep(0.2)
    assert runs(log) == []
    agent.outbox.close()
    agent.client.close()


@pytest.mark.parametrize(
    ("op", "retries", "error", "recoverable", "retry_after"),
    [
        ("refuses", 0, "NonRecoverableError: no, never", False, None),
        ("wobbly", 0, "RecoverableError: try later", True, 0.1),
        ("again", 0, "OperationRetry: once more", True, 0.1),
        ("boom", 0, "ValueError: plain error", True, None),
        ("unjson", 0, "result is not JSON: Object of type set is not JSON serializable", False,
         None),
    ],
)  # fmt: skip
def test_exceptions_map_to_outcomes_as_on_the_manager(
    stub: StubManager,
    start_agent: Callable[..., Running],
    tmp_path: Path,
    op: str,
    retries: int,
    error: str,
    recoverable: bool,
    retry_after: float | None,
) -> None:
    log = tmp_path / "runs.log"
    stub.queue(**assignment("x1", ref(op), kwargs={"log": str(log)}, retries=retries))
    start_agent()
    wait_for(lambda: len(results(stub)) == 1)
    (body,) = results(stub)
    assert body["outcome"] == "failed"
    assert body["error"] == error
    assert body["recoverable"] is recoverable
    assert body["retry_after"] == retry_after
    assert body["result"] is None


def test_ctx_is_the_one_a_manager_builds(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    stub.queue(**assignment("x1", ref("again"), kwargs={"log": str(log)}, retries=1, resume=True))
    start_agent()
    wait_for(lambda: len(results(stub)) == 1)
    assert results(stub)[0]["result"] == "second time"  # ctx.retries was 1
    (run,) = runs(log)
    assert run["resume"] is True
    assert run["retries"] == 1


def test_an_operation_that_does_not_import_fails_not_recoverable(
    stub: StubManager, start_agent: Callable[..., Running]
) -> None:
    stub.queue(**assignment("x1", "no_such_module_here:op"))
    start_agent()
    wait_for(lambda: len(results(stub)) == 1)
    (body,) = results(stub)
    assert body["outcome"] == "failed"
    assert body["recoverable"] is False
    assert "cannot import module 'no_such_module_here'" in body["error"]


def test_a_result_stays_in_the_outbox_until_the_manager_answers(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    stub.result_status = 503
    stub.queue(**assignment("x1", ref("step"), kwargs={"log": str(log)}))
    start_agent()
    wait_for(lambda: len(results(stub)) >= 4)
    assert outbox_rows(tmp_path / "agent-home") == ["x1"]
    times = [at for at, _ in stub.results()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.05 for gap in gaps)  # backoff, not a busy loop
    stub.result_status = "accepted"
    wait_for(lambda: outbox_rows(tmp_path / "agent-home") == [])
    assert len(runs(log)) == 1  # resending never runs the operation again


def test_heartbeats_list_an_attempt_until_the_manager_has_its_result(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    home = tmp_path / "agent-home"
    left = Outbox(outbox_path(home, "web"))
    body = {"agent": "someone-else", "outcome": "succeeded", "result": 1, "error": None,
            "recoverable": True, "retry_after": None, "logs": []}  # fmt: skip
    left.put("theirs", body)
    left.close()
    stub.result_status = "later"  # answered for neither: both stay in the outbox
    stub.queue(**assignment("x1", ref("step"), kwargs={"log": str(tmp_path / "runs.log")}))
    start_agent()
    wait_for(lambda: sorted(outbox_rows(home)) == ["theirs", "x1"])
    count = len(stub.paths("/agents/heartbeat"))
    wait_for(lambda: len(stub.paths("/agents/heartbeat")) >= count + 2)
    beats = [body["attempts"] for _, body in stub.paths("/agents/heartbeat")][count:]
    assert all(beat == ["x1"] for beat in beats)  # done, result kept: still listed
    stub.result_status = "accepted"
    wait_for(lambda: outbox_rows(home) == [])
    count = len(stub.paths("/agents/heartbeat"))
    wait_for(lambda: len(stub.paths("/agents/heartbeat")) >= count + 2)
    assert stub.paths("/agents/heartbeat")[-1][1]["attempts"] == []


@pytest.mark.parametrize("status", ["unknown", "conflict"])
def test_a_result_refused_for_good_leaves_the_outbox(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path, status: str
) -> None:
    stub.result_status = status
    stub.queue(**assignment("x1", ref("step"), kwargs={"log": str(tmp_path / "runs.log")}))
    start_agent()
    wait_for(lambda: len(results(stub)) == 1)
    wait_for(lambda: outbox_rows(tmp_path / "agent-home") == [])
    time.sleep(0.3)
    assert len(results(stub)) == 1


def test_a_result_the_manager_cannot_read_becomes_a_failure_saying_so(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    # refused in the batch, then alone: the agent learns which result it is
    stub.result_statuses["x1"] = [422, 422]
    stub.queue(**assignment("x1", ref("step"), kwargs={"log": str(tmp_path / "runs.log")}))
    start_agent()
    wait_for(lambda: len(results(stub)) == 3)
    first, alone, second = results(stub)
    assert first["outcome"] == alone["outcome"] == "succeeded"
    assert second["outcome"] == "failed"
    assert second["recoverable"] is False
    assert second["error"] == "the manager refused the agent's result: scripted refusal"
    wait_for(lambda: outbox_rows(tmp_path / "agent-home") == [])


def test_one_refused_result_does_not_hold_up_the_others(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    home = tmp_path / "agent-home"
    kept = Outbox(outbox_path(home, "web"))
    for attempt_id in ("r1", "r2"):
        kept.put(attempt_id, {"agent": "a1", "outcome": "succeeded", "result": attempt_id,
                              "error": None, "recoverable": True, "retry_after": None,
                              "logs": []})  # fmt: skip
    kept.close()
    stub.result_statuses["r1"] = ["conflict"]
    start_agent()
    wait_for(lambda: outbox_rows(home) == [])
    assert [body["attempt_id"] for body in results(stub)] == ["r1", "r2"]  # one call


def test_a_failure_sends_its_traceback_as_a_log_line(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    stub.queue(**assignment("x1", ref("boom"), kwargs={"log": str(tmp_path / "runs.log")}))
    start_agent()
    wait_for(lambda: len(results(stub)) == 1)
    (line,) = results(stub)[0]["logs"]
    assert line["level"] == "error"
    assert line["message"].startswith("the failure on agent a1:\nTraceback")
    assert "ValueError: plain error" in line["message"]


def test_a_restarted_agent_delivers_what_is_left_before_its_first_claim_takes_anything(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    home = tmp_path / "agent-home"
    left = Outbox(outbox_path(home, "web"))
    body = {"agent": "old:1", "outcome": "succeeded", "result": 1, "error": None,
            "recoverable": True, "retry_after": None, "logs": []}  # fmt: skip
    left.put("old1", body)
    left.close()
    start_agent()
    wait_for(lambda: len(stub.claims()) >= 1)
    first = stub.paths("/agents/exchange")[0][1]
    # in the first call, which records the results before it claims anything
    assert first["results"] == [{**body, "attempt_id": "old1"}]  # with the old agent's name
    wait_for(lambda: outbox_rows(home) == [])


def test_an_outbox_of_more_than_one_page_is_sent_to_the_last_result(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    home = tmp_path / "agent-home"
    left = Outbox(outbox_path(home, "web"))
    for index in range(250):
        left.put(f"r{index}", {"agent": "old:1", "outcome": "succeeded", "result": index,
                               "error": None, "recoverable": True, "retry_after": None,
                               "logs": []})  # fmt: skip
    left.close()
    start_agent()
    wait_for(lambda: outbox_rows(home) == [])
    assert [body["result"] for body in results(stub)] == list(range(250))


def test_a_kill_from_the_heartbeat_stops_a_process_operation_and_reports_nothing(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log, pidfile = tmp_path / "runs.log", tmp_path / "pid"
    kwargs = {"log": str(log), "pidfile": str(pidfile), "seconds": 60}
    stub.queue(**assignment("x1", ref("sleepy"), kwargs=kwargs, process=True))
    start_agent()
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "")
    pid = int(pidfile.read_text())
    stub.kill = ["x1"]
    wait_for(lambda: not _alive(pid))
    stub.queue(**assignment("x2", ref("step"), kwargs={"log": str(log)}))  # the slot is free
    wait_for(lambda: len(results(stub)) == 1)
    assert results(stub)[0]["result"] == {"done": "x2", "value": None}
    assert [body["attempt_id"] for body in results(stub)] == ["x2"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_task_timeout_is_enforced_on_the_agent(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    stub.queue(**assignment("x1", ref("lazy"), kwargs={"log": str(log), "seconds": 5},
                            timeout=0.3))  # fmt: skip
    start_agent()
    wait_for(lambda: len(results(stub)) == 1, timeout=3)
    (body,) = results(stub)
    assert (body["outcome"], body["error"], body["recoverable"]) == (
        "failed",
        "timed out after 0.3s",
        True,
    )


def test_a_busy_agent_does_not_claim(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    kwargs = {"log": str(log), "marker": str(marker), "hold": str(hold)}
    stub.queue(**assignment("x1", ref("block"), kwargs=kwargs))
    start_agent(concurrency=1)
    wait_for(marker.exists)
    claims = len(stub.claims())
    time.sleep(1.5)  # three claim waits
    assert len(stub.claims()) == claims
    hold.unlink()
    wait_for(lambda: len(results(stub)) == 1)
    wait_for(lambda: len(stub.claims()) > claims)


def test_stop_lets_a_running_operation_end_within_the_grace(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    kwargs = {"log": str(log), "marker": str(marker), "hold": str(hold)}
    stub.queue(**assignment("x1", ref("block"), kwargs=kwargs))
    running = start_agent(grace=5.0)
    wait_for(marker.exists)
    stopper = threading.Thread(target=running.stop)
    stopper.start()
    time.sleep(0.3)
    claims = len(stub.claims())
    hold.unlink()
    stopper.join(10)
    assert [body["result"] for body in results(stub)] == [{"done": "x1"}]
    assert len(stub.claims()) <= claims  # no claim once stopping


def test_a_refused_claim_stops_the_agent_with_the_reason(
    stub: StubManager, start_agent: Callable[..., Running]
) -> None:
    stub.claim_status = 403
    running = start_agent()
    running.thread.join(5)
    assert not running.thread.is_alive()
    assert str(running.failed) == "the manager refused this agent: refused"


@pytest.mark.parametrize(("given", "fewest", "most"), [(None, 8, 40), (1.0, 1, 3)])
def test_the_heartbeat_interval_given_wins_over_the_one_the_manager_asks(
    stub: StubManager,
    start_agent: Callable[..., Running],
    given: float | None,
    fewest: int,
    most: int,
) -> None:
    start_agent(heartbeat_interval=given)  # the stub asks for 0.1 s
    time.sleep(1.5)
    assert fewest <= len(stub.paths("/agents/heartbeat")) <= most


def test_an_idle_agent_renews_its_long_poll_without_beating_and_spreads_its_waits(
    stub: StubManager, start_agent: Callable[..., Running], tmp_path: Path
) -> None:
    stub.waiting_beats = True  # the manager counts a claim that waits as the agent's beat
    start_agent(heartbeat_interval=0.2, claim_wait=0.25)
    wait_for(lambda: len(stub.claims()) >= 3)  # past its first beat, renewing
    claims, beats = len(stub.claims()), len(stub.paths("/agents/heartbeat"))
    time.sleep(2.0)
    renewals = [body for _, body in stub.claims()[claims:]]
    # each long-poll ends with nothing and is renewed at once: about one per 0.2-0.25 s
    assert len(renewals) >= 6, len(renewals)
    # ... and no renewal sends a beat of its own (before: one beat in most of them)
    assert len(stub.paths("/agents/heartbeat")) == beats
    # the waits are spread over 80-100% of claim_wait, not all the same
    waits = [body["wait"] for body in renewals]
    assert all(0.2 <= wait <= 0.25 for wait in waits), waits
    assert len(set(waits)) > 1, waits

    # holding a task, it beats again: the manager sees the attempt in its beats
    log = str(tmp_path / "runs.log")
    stub.queue(**assignment("s1", ref("lazy"), kwargs={"log": log, "seconds": 1.0}))
    wait_for(lambda: any(body["attempts"] == ["s1"] for _, body in stub.paths("/agents/heartbeat")))


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(base=0.2, cap=10.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.1 <= delays[0] <= 0.2
    assert 0.2 <= delays[1] <= 0.4
    assert all(5.0 <= delay <= 10.0 for delay in delays[7:])
    backoff.reset()
    assert backoff.next_delay() <= 0.2
