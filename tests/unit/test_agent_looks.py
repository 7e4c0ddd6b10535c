"""When the owner of a run looks for agents' results (`dalsegno.engine.agents.AgentTasks`):
at once for a run that awaits one task, at most every `LOOK_GAP` seconds while it awaits
more, so results reported close together are applied in one group commit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from dalsegno.engine.agents import CHECK_EVERY, LOOK_GAP, AgentTasks


def tasks_awaiting(count: int) -> AgentTasks:
    graph: Any = SimpleNamespace(awaited=set(range(count)))
    run: Any = SimpleNamespace(config=SimpleNamespace(agent_timeout=30.0))
    return AgentTasks(graph, run)


def test_without_a_notification_no_look_is_due_before_the_periodic_one() -> None:
    assert tasks_awaiting(5).due_in(100.0) == CHECK_EVERY


def test_a_run_awaiting_one_task_looks_at_once_when_notified() -> None:
    """A chain of agent tasks: nothing else can come, waiting would only add latency."""
    agents = tasks_awaiting(1)
    agents._looked = 100.0
    agents._notified.set()
    assert agents.due_in(100.001) == 0.0


def test_a_run_awaiting_more_looks_at_most_every_gap() -> None:
    agents = tasks_awaiting(2000)
    agents._notified.set()
    assert agents.due_in(100.0) == 0.0  # the first look after a quiet time: at once
    agents._looked = 100.0
    assert abs(agents.due_in(100.004) - (LOOK_GAP - 0.004)) < 1e-9
    assert agents.due_in(100.0 + LOOK_GAP) == 0.0
