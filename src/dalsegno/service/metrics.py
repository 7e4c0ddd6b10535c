"""Prometheus metrics of a manager (`GET /metrics`), with the standard client library.

Counters of what this process did are counted where it is written: the store. A
`MeteredStore` stands in front of the manager's store, times every call
(`dalsegno_store_seconds`, by operation), and counts from the writes themselves the task
attempts started and ended, the agent claims and the takeovers. Gauges of the whole store
(executions by state) are read from it when Prometheus scrapes, so every manager of a
store reports the same figures: aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.store.base import Batch, Claim, Store

if TYPE_CHECKING:
    from dalsegno.service.executions import ExecutionService

ENDED = {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.RESCHEDULED}
TAKEN_OVER = {
    ExecutionState.STARTED,
    ExecutionState.CANCELLING,
    ExecutionState.FORCE_CANCELLING,
    ExecutionState.KILL_CANCELLING,
}
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Calls that wait on purpose (for a notification) say nothing of the store's latency.
UNTIMED = frozenset({"wait_for_notification", "close"})


class Metrics:
    """The registry `/metrics` serves, and the instruments the store feeds."""

    def __init__(self, service: ExecutionService) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(ExecutionStates(service))
        self.tasks_started = Counter(
            "dalsegno_tasks_started",
            "Task attempts this process handed to an executor (its pool or an agent queue).",
            registry=self.registry,
        )
        self.tasks_ended = Counter(
            "dalsegno_tasks_ended",
            "Task attempts whose end this process wrote, by outcome "
            "(rescheduled: failed with a retry left).",
            ["outcome"],
            registry=self.registry,
        )
        for state in ENDED:
            self.tasks_ended.labels(state.value)
        self.takeovers = Counter(
            "dalsegno_takeovers",
            "Executions this process took over from an owner that stopped.",
            registry=self.registry,
        )
        self.agent_claims = Counter(
            "dalsegno_agent_claims",
            "Agent tasks claimed from this manager by agents.",
            registry=self.registry,
        )
        self.store_seconds = Histogram(
            "dalsegno_store_seconds",
            "Time of the store's calls, by operation.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=self.registry,
        )
        self.running = Gauge(
            "dalsegno_running_executions",
            "Executions this manager runs now.",
            registry=self.registry,
        )

    def watch_running(self, count: Callable[[], int]) -> None:
        """Read the running executions from `count` at each scrape."""
        self.running.set_function(lambda: float(count()))


class ExecutionStates(Collector):
    """`dalsegno_executions{state}`: executions in the store by state, read at each scrape."""

    def __init__(self, service: ExecutionService) -> None:
        self._service = service

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily("dalsegno_executions", "Executions in the store, by state.")]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "dalsegno_executions", "Executions in the store, by state.", labels=["state"]
        )
        counts = self._service.store.count_executions_by_status()
        for state in ExecutionState:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class MeteredStore:
    """A store's stand-in: every call timed, and the writes that mean something counted."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.inner = store
        self._metrics = metrics
        self._calls: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if not callable(found) or name.startswith("_") or name in UNTIMED:
            return found
        timed = self._calls.get(name)
        if timed is None:
            timed = self._calls[name] = self._timed(name, found)
        return timed

    def _timed(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        histogram = self._metrics.store_seconds.labels(name)
        count = getattr(self, f"_count_{name}", None)

        @wraps(call)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                result = call(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - began)
            if count is not None:
                count(result, *args, **kwargs)
            return result

        return timed

    def _count_apply(self, state: ExecutionState, batch: Batch) -> None:
        if batch.starts and state is ExecutionState.STARTED:  # starts are written only then
            self._metrics.tasks_started.inc(len(batch.starts))
        for change in batch.tasks:
            if change.status in ENDED and change.expected is not change.status:
                self._metrics.tasks_ended.labels(change.status.value).inc()

    def _count_claim(self, claimed: Any, claim: Claim, *_: Any, **__: Any) -> None:
        # Taking up an execution in the state it was left in, under a new owner: a takeover
        # (a manager's, or a person's resume of a crashed execution, which is the same).
        took_up = claimed is not None and claim.owner is not None
        if took_up and claim.expected_status is claim.status and claim.status in TAKEN_OVER:
            self._metrics.takeovers.inc()

    def _count_claim_agent_tasks(self, assignments: list[Any], *_: Any, **__: Any) -> None:
        self._metrics.agent_claims.inc(len(assignments))

    def _count_exchange_agent_tasks(self, exchanged: Any, *_: Any, **__: Any) -> None:
        # protocol 2: results delivered and tasks claimed (and started) in one call
        self._metrics.agent_claims.inc(len(exchanged.assignments))


def instrument(service: ExecutionService) -> Metrics:
    """Metrics for `service`, whose store is put behind a `MeteredStore` (before a manager
    or an agent service takes the store from it)."""
    metrics = Metrics(service)
    if not isinstance(service.store, MeteredStore):
        service.store = cast(Store, MeteredStore(service.store, metrics))
    return metrics
