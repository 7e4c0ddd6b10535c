"""The heartbeat interval the manager suggests leaves three beats in the agent timeout."""

from __future__ import annotations

import pytest

from dalsegno.engine.runner import EngineConfig
from dalsegno.service.agents import AgentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store.agent_records import AgentBeat
from dalsegno.store.base import Store


def beat_interval(store: Store, config: EngineConfig, attempts: list[str]) -> float:
    agents = AgentService(ExecutionService(store, config))
    beat = AgentBeat("web", "a1", "host", 1, 1, attempts)
    return float(agents.heartbeat(beat)["interval"])


@pytest.mark.parametrize(
    ("lease_timeout", "agent_timeout", "interval"),
    [(15.0, None, 2.0), (3.0, None, 1.0), (15.0, 1.5, 0.5)],
)
def test_the_suggested_interval_is_a_third_of_a_short_timeout(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    lease_timeout: float,
    agent_timeout: float | None,
    interval: float,
) -> None:
    monkeypatch.delenv("DALSEGNO_AGENT_TIMEOUT", raising=False)
    config = EngineConfig(lease_timeout=lease_timeout, agent_timeout=agent_timeout)
    assert beat_interval(store, config, ["held-1"]) == pytest.approx(interval)


@pytest.mark.parametrize(
    ("lease_timeout", "agent_timeout", "interval"),
    [(15.0, None, 5.0), (3.0, None, 1.0), (15.0, 1.5, 0.5)],
)
def test_an_idle_agent_is_asked_to_beat_every_third_of_the_timeout(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    lease_timeout: float,
    agent_timeout: float | None,
    interval: float,
) -> None:
    monkeypatch.delenv("DALSEGNO_AGENT_TIMEOUT", raising=False)
    config = EngineConfig(lease_timeout=lease_timeout, agent_timeout=agent_timeout)
    assert beat_interval(store, config, []) == pytest.approx(interval)


def test_an_idle_agents_beat_is_written_every_two_thirds_of_the_timeout_at_most(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle fleet costs few commits (and, for the beats this manager wrote, no read),
    and `agents list` never shows a live agent silent for longer than the timeout (15 s)."""
    monkeypatch.delenv("DALSEGNO_AGENT_TIMEOUT", raising=False)
    agents = AgentService(ExecutionService(store, EngineConfig(lease_timeout=15.0)))
    clock = [1000.0]
    monkeypatch.setattr("dalsegno.store.agents._now", lambda: clock[0])

    def beat_at(moment: float, attempts: list[str] | None = None) -> float:
        clock[0] = moment
        agents.heartbeat(AgentBeat("web", "a1", "host", 1, 1, attempts or []))
        (found,) = agents.list_agents()
        return found.last_heartbeat_at

    assert beat_at(1000.0) == 1000.0  # registered at once
    assert beat_at(1005.0) == 1000.0  # idle, 5 s later: not written
    assert beat_at(1009.9) == 1000.0
    assert beat_at(1010.0) == 1010.0  # two thirds of the timeout: written
    assert beat_at(1011.0, ["held-1"]) == 1011.0  # a beat listing attempts: always
    clock[0] = 1012.0
    agents.heartbeat(AgentBeat("web", "a1", "host", 2, 1, []))  # restarted: a new pid
    (found,) = agents.list_agents()
    assert (found.pid, found.last_heartbeat_at) == (2, 1012.0)
