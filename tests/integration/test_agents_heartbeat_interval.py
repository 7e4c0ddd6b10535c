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
