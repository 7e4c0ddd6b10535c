"""The service layer: the one thing the CLI, the REST API and the web UI call."""

from __future__ import annotations

import os

from dalsegno.engine.lease import lease_timeout
from dalsegno.engine.references import reference_of
from dalsegno.engine.resume import PlannedSubgraph, PlannedTask, ResumePlan
from dalsegno.engine.runner import EngineConfig, Outcome
from dalsegno.lifecycle import WORKFLOWS as LIFECYCLE_WORKFLOWS
from dalsegno.model.blueprints import (
    BlueprintRecord,
    DeploymentRecord,
    InstanceLink,
    InstanceState,
    NodeInstance,
)
from dalsegno.model.records import EventRecord, ExecutionRecord, NewEvent, TaskRecord
from dalsegno.service.blueprints import BlueprintService
from dalsegno.service.deployments import DeploymentService, DeploymentView
from dalsegno.service.executions import ExecutionService, RunResult
from dalsegno.store import default_home, redacted

DEFAULT_CONCURRENCY = 32


def open_service(store_url: str | None = None, concurrency: int | None = None) -> ExecutionService:
    """The service on the store at `store_url` (default: `DALSEGNO_STORE`, then SQLite).

    `concurrency` defaults to `DALSEGNO_CONCURRENCY`, then 32; the lease timeout comes from
    `DALSEGNO_LEASE_TIMEOUT` (15 s).
    """
    from dalsegno.store import open_store

    if concurrency is None:
        raw = os.environ.get("DALSEGNO_CONCURRENCY")
        try:
            concurrency = int(raw) if raw else DEFAULT_CONCURRENCY
        except ValueError:
            msg = f"DALSEGNO_CONCURRENCY must be a whole number, not {raw!r}"
            raise ValueError(msg) from None
    if concurrency < 1:
        msg = f"concurrency must be at least 1, not {concurrency}"
        raise ValueError(msg)
    config = EngineConfig(concurrency=concurrency, lease_timeout=lease_timeout())
    return ExecutionService(open_store(store_url), config)


def version() -> str:
    """This installation's version of dalsegno."""
    from importlib import metadata

    try:
        return metadata.version("dalsegno")
    except metadata.PackageNotFoundError:
        return "0"


def open_service_with(store_url: str, config: EngineConfig) -> ExecutionService:
    """The service on the store at `store_url`, running executions with `config`."""
    from dalsegno.store import open_store

    return ExecutionService(open_store(store_url), config)


__all__ = [
    "LIFECYCLE_WORKFLOWS",
    "BlueprintRecord",
    "BlueprintService",
    "DeploymentRecord",
    "DeploymentService",
    "DeploymentView",
    "EngineConfig",
    "EventRecord",
    "ExecutionRecord",
    "ExecutionService",
    "InstanceLink",
    "InstanceState",
    "NewEvent",
    "NodeInstance",
    "Outcome",
    "PlannedSubgraph",
    "PlannedTask",
    "ResumePlan",
    "RunResult",
    "TaskRecord",
    "default_home",
    "open_service",
    "open_service_with",
    "redacted",
    "reference_of",
    "version",
]
