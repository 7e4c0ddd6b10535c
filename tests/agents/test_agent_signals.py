"""Wake-ups of waiting claims (`dalsegno.service.agent_signals`) on a real store, both
backends: a claim is woken by the notification of the tasks it waits for, whenever it
began to wait, not by the look that follows a second later when a notification is missed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from dalsegno.engine.runner import EngineConfig
from dalsegno.service.agent_signals import RECHECK, TaskSignals
from dalsegno.service.agents import AgentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store
from dalsegno.store.agent_records import AgentReport, Delivery, Exchange
from integration.test_agents_engine import REMOTE, Running, wait_for


class Watched:
    """The real store, telling when its notification waits begin (it forwards the rest)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.waits = 0
        self.changed = threading.Condition()

    def wait_for_notification(self, channels: Sequence[str], timeout: float) -> set[str]:
        with self.changed:
            self.waits += 1
            self.changed.notify_all()
        return self.store.wait_for_notification(channels, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_claim_that_begins_waiting_while_the_signals_wait_is_woken_by_the_next_notification(
    store: Store,
) -> None:
    # The signals' thread waits for a notification while a claim of another queue waits.
    watched = Watched(store)
    signals = TaskSignals(lambda: watched)  # type: ignore[arg-type,return-value]
    stop_other = signals.subscribe("db", lambda: None)
    woken = threading.Event()
    with watched.changed:
        assert watched.changed.wait_for(lambda: watched.waits >= 2, timeout=10)
        waits = watched.waits
        # A new wait begins: the claim of "web" starts to wait while the thread is in it.
        assert watched.changed.wait_for(lambda: watched.waits > waits, timeout=10)
    stop_web = signals.subscribe("web", woken.set)
    service = ExecutionService(
        store, EngineConfig(concurrency=4, lease_timeout=3.0, poll_interval=0.05)
    )
    try:
        running = Running(service, REMOTE, {})  # its task is sent to "web", and notified
        wait_for(lambda: store.claimable_queues(["web"]) == {"web"}, timeout=10)
        claimable = time.monotonic()
        assert woken.wait(timeout=10), "the waiting claim was never woken"
        late = time.monotonic() - claimable
    finally:
        stop_web()
        stop_other()
    # Woken by the notification, not by the look a whole RECHECK later.
    assert late < RECHECK / 2, f"woken {late:.2f} s after its task was claimable"
    agents = AgentService(service)  # the agent takes the task and ends the execution
    _, (task,) = agents.exchange(Exchange("web", "a1", [], 1, "signals01", False))
    done = AgentReport("succeeded", "null", None, True, None)
    agents.exchange(
        Exchange("web", "a1", [Delivery(task["attempt_id"], done)], 0, "signals02", False)
    )
    assert running.end() == ("completed", None)
