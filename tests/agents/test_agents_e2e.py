"""The proofs of issue 4 with a real `dalsegno manager` and real `dalsegno agent`
processes, killed with SIGKILL: operations record every run of their body in a file, so
"ran exactly once" is read from what really ran."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agents.processes import Cluster, alive, runs, wait_for

pytestmark = pytest.mark.crash


@pytest.fixture
def cluster(home: Path, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(home, tmp_path)
    yield running
    running.stop_all()


def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    log, marker, hold = tmp_path / "runs.log", tmp_path / "began", tmp_path / "hold"
    hold.touch()
    return log, marker, hold


def keys(log: Path) -> dict[str, list[tuple[str, bool]]]:
    """Each task's runs as (agent name, ctx.resume); "" is the manager."""
    return {key: [(run["agent"], run["resume"]) for run in found] for key, found in
            runs(log).items()}  # fmt: skip


def test_an_agent_task_runs_on_the_agent_and_its_logs_become_events(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    cluster.start_manager()
    cluster.start_agent("agent-1")
    execution_id = cluster.start("agent_flows:one", op="step", log=str(log), value=5)
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert keys(log) == {"t": [("agent-1", False)]}
    assert cluster.task(execution_id, "t")["result"] == {"done": "t", "value": 5}
    events = cluster.get(execution_id)  # the task's log line came back as an event
    import httpx

    found = httpx.get(f"{cluster.url}/executions/{events['id']}/events", headers=cluster.headers)
    messages = [event["message"] for event in found.json() if event["type"] == "log"]
    assert "step t ran" in messages


def test_kill_9_of_the_manager_while_an_agent_operation_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    cluster.start_agent("agent-1")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on the agent")
    cluster.kill_manager()  # kill -9 while the agent runs blk
    cluster.start_manager()
    hold.unlink()
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert keys(log) == {"a": [("", False)], "blk": [("agent-1", False)], "c": [("agent-1", False)]}
    assert cluster.outbox("agent-1") == []


def test_the_result_of_an_agent_waits_out_a_10_s_manager_outage(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    cluster.start_agent("agent-1")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on the agent")
    cluster.kill_manager()
    down_since = time.monotonic()
    hold.unlink()  # the agent finishes blk while no manager is there
    wait_for(lambda: len(cluster.outbox("agent-1")) == 1, what="for the result in the outbox")
    time.sleep(max(0.0, 10.0 - (time.monotonic() - down_since)))
    assert len(cluster.outbox("agent-1")) == 1  # kept all along, never dropped
    cluster.start_manager()
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert keys(log) == {"a": [("", False)], "blk": [("agent-1", False)], "c": [("agent-1", False)]}
    wait_for(lambda: cluster.outbox("agent-1") == [])


def test_a_restarted_agent_sends_the_result_its_killed_predecessor_kept(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    first = cluster.start_agent("agent-1")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on the agent")
    cluster.kill_manager()
    hold.unlink()
    wait_for(lambda: len(cluster.outbox("agent-1")) == 1, what="for the result in the outbox")
    first.kill()  # kill -9 of the agent with an unsent result
    first.wait(10)
    # The same home: it sends what is left first. Started before the manager, so that it is
    # up when the takeover starts the agent timeout (2 s here): a restart slower than that
    # on a loaded machine would make the attempt look lost, and blk would run again.
    cluster.start_agent("agent-1")
    cluster.start_manager()
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert keys(log) == {"a": [("", False)], "blk": [("agent-1", False)], "c": [("agent-1", False)]}


def _blk_agent(log: Path) -> str:
    (run,) = runs(log)["blk"]
    return str(run["agent"])


def test_kill_9_of_an_agent_runs_a_resumable_operation_again_on_another_agent(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    cluster.start_agent("agent-1")
    cluster.start_agent("agent-2")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on an agent")
    lost = _blk_agent(log)
    other = "agent-2" if lost == "agent-1" else "agent-1"
    cluster.agents[lost].kill()
    cluster.agents[lost].wait(10)
    hold.unlink()
    wait_for(lambda: cluster.status(execution_id) == "completed")
    found = keys(log)
    assert found["blk"] == [(lost, False), (other, True)]
    assert found["a"] == [("", False)]
    assert len(found["c"]) == 1


def test_kill_9_of_an_agent_fails_a_non_resumable_operation_with_the_reason(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    cluster.start_agent("agent-1")
    cluster.start_agent("agent-2")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold), resumable=False
    )
    wait_for(marker.exists, what="for blk to begin on an agent")
    lost = _blk_agent(log)
    cluster.agents[lost].kill()
    cluster.agents[lost].wait(10)
    wait_for(lambda: cluster.status(execution_id) == "failed")
    reason = (
        f"operation interrupted on agent {lost} and not resumable: blk (agent_flows:block_once)"
    )
    assert cluster.task(execution_id, "blk")["error"] == reason
    assert reason in cluster.get(execution_id)["error"]
    assert cluster.task(execution_id, "c")["status"] == "pending"
    assert keys(log) == {"a": [("", False)], "blk": [(lost, False)]}
    hold.unlink()


def test_a_wrong_queue_token_is_refused_and_the_agent_exits_2(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_manager()
    answer = cluster.post("/agents/tokens", {"queue": "web"})
    assert answer.status_code == 201, answer.text
    web_token = answer.json()["token"]
    impostor = cluster.start_agent("agent-x", "db", token=web_token)
    assert impostor.wait(20) == 2
    assert "error: the manager refused this agent:" in cluster.agent_log("agent-x").read_text()
    stranger = cluster.start_agent("agent-y", "web", token="not-a-token")
    assert stranger.wait(20) == 2
    # the web token serves queue web
    log = tmp_path / "runs.log"
    cluster.start_agent("agent-1", "web", token=web_token)
    execution_id = cluster.start("agent_flows:one", op="step", log=str(log))
    wait_for(lambda: cluster.status(execution_id) == "completed")


def test_a_stolen_attempt_is_refused_to_another_agent_and_to_another_queue(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    db_token = cluster.post("/agents/tokens", {"queue": "db"}).json()["token"]
    cluster.start_agent("agent-1")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on the agent")
    agents = cluster.get_agents()
    (held,) = next(agent for agent in agents if agent["name"] == "agent-1")["running"]
    attempt = held["attempt_id"]
    forged = {"agent": "agent-1", "outcome": "failed", "result": None, "error": "forged",
              "recoverable": False, "retry_after": None, "logs": []}  # fmt: skip
    answer = cluster.post(f"/agents/attempts/{attempt}/result", forged, token=db_token)
    assert answer.status_code == 403, answer.text
    answer = cluster.post(f"/agents/attempts/{attempt}/result", {**forged, "agent": "agent-thief"})
    assert answer.status_code == 409, answer.text
    hold.unlink()
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert cluster.task(execution_id, "blk")["result"] == {"done": "blk"}
    # the holder delivering again (its outbox resending) is harmless: the first one won
    answer = cluster.post(f"/agents/attempts/{attempt}/result", forged)
    assert answer.status_code == 200, answer.text
    assert cluster.task(execution_id, "blk")["status"] == "succeeded"
    assert cluster.task(execution_id, "blk")["result"] == {"done": "blk"}
    assert cluster.status(execution_id) == "completed"


def test_kill_cancel_stops_an_agents_process_operation(cluster: Cluster, tmp_path: Path) -> None:
    log, pidfile = tmp_path / "runs.log", tmp_path / "pid"
    cluster.start_manager()
    cluster.start_agent("agent-1")
    execution_id = cluster.start(
        "agent_flows:one", op="sleepy", log=str(log), pidfile=str(pidfile), seconds=60
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "", what="for the child")
    pid = int(pidfile.read_text())
    answer = cluster.post(f"/executions/{execution_id}/cancel", {"mode": "kill"})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: cluster.status(execution_id) == "cancelled", timeout=10)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10, what="for the operation's process to be stopped")
    task = cluster.task(execution_id, "t")
    assert (task["status"], task["error"]) == ("failed", "killed by cancel")
    assert alive(cluster.agents["agent-1"])  # the agent itself goes on serving


def test_force_cancel_leaves_an_agent_operation_to_end_and_ignores_its_result(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    cluster.start_agent("agent-1")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on the agent")
    answer = cluster.post(f"/executions/{execution_id}/cancel", {"mode": "force"})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: cluster.status(execution_id) == "cancelled", timeout=10)
    hold.unlink()  # blk ends after the cancel; its result changes nothing
    wait_for(lambda: cluster.outbox("agent-1") == [] and len(runs(log)["blk"]) == 1)
    time.sleep(1.0)
    assert cluster.status(execution_id) == "cancelled"
    assert cluster.task(execution_id, "blk")["status"] == "started"
    assert cluster.task(execution_id, "c")["status"] == "pending"
    assert keys(log) == {"a": [("", False)], "blk": [("agent-1", False)]}


def test_sigterm_lets_the_running_operation_end_and_report(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    agent = cluster.start_agent("agent-1", "web", "--grace", "10")
    execution_id = cluster.start(
        "agent_flows:one", op="block", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for the operation to begin")
    agent.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert alive(agent)  # waiting for its operation
    hold.unlink()
    assert agent.wait(15) == 0
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert keys(log) == {"t": [("agent-1", False)]}


def test_a_frozen_agent_past_the_timeout_loses_its_attempt_and_its_result_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    log, marker, hold = files(tmp_path)
    cluster.start_manager()
    cluster.start_agent("agent-1")
    cluster.start_agent("agent-2")
    execution_id = cluster.start(
        "agent_flows:around", log=str(log), marker=str(marker), hold=str(hold)
    )
    wait_for(marker.exists, what="for blk to begin on an agent")
    frozen_name = _blk_agent(log)
    other = "agent-2" if frozen_name == "agent-1" else "agent-1"
    frozen = cluster.agents[frozen_name]
    frozen.send_signal(signal.SIGSTOP)  # alive but silent: its heartbeats stop
    wait_for(lambda: len(runs(log)["blk"]) == 2, what="for blk to run again elsewhere")
    hold.unlink()
    wait_for(lambda: cluster.status(execution_id) == "completed")
    frozen.send_signal(signal.SIGCONT)  # its blk ends now; its result must change nothing
    wait_for(lambda: cluster.outbox(frozen_name) == [], what="for the refused result to go")
    assert cluster.status(execution_id) == "completed"
    found = keys(log)
    assert found["blk"][0] == (frozen_name, False)
    assert found["blk"][1] == (other, True)
    assert alive(frozen)  # it goes on serving


# an idle agent's claim that waits in a long-poll is its heartbeat -------------------


def heartbeats(cluster: Cluster) -> float:
    """The heartbeats the manager has answered (its `/metrics`)."""
    site = cluster.url.removesuffix("/api/v1")
    text = httpx.get(f"{site}/metrics", headers=cluster.headers).text
    for line in text.splitlines():
        if line.startswith('dalsegno_store_seconds_count{operation="agent_heartbeat"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_idle_agent_waiting_in_a_long_poll_is_kept_alive_without_beating(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_manager()
    cluster.start_agent("idle-1")
    wait_for(lambda: len(cluster.get_agents()) == 1, what="for the agent's first beat")
    time.sleep(1.0)  # its claim waits in a long-poll
    before = heartbeats(cluster)
    oldest = 0.0
    until = time.monotonic() + 4.0
    while time.monotonic() < until:
        (agent,) = cluster.get_agents()
        oldest = max(oldest, time.time() - agent["last_heartbeat_at"])
        time.sleep(0.1)
    beats = heartbeats(cluster) - before
    # alive all along for `agents list`: never older than the agent timeout (2 s) ...
    assert oldest < 2.0
    # ... with few beats: one every 0.3 s would be 13 in these 4 s
    assert beats <= 3, beats

    log = tmp_path / "runs.log"
    execution_id = cluster.start("agent_flows:one", op="step", log=str(log), value=5)
    wait_for(lambda: cluster.status(execution_id) == "completed")
    assert [run["agent"] for run in runs(log)["t"]] == ["idle-1"]
