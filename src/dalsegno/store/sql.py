"""The store on SQLAlchemy Core: one mixin per subject, every query dalsegno runs.

- `dalsegno.store.statements`: the hot path's statements, compiled once per dialect
- `dalsegno.store.core`: engines, transactions, the lease check, shared writes
- `dalsegno.store.executions`: executions, cancel requests, events
- `dalsegno.store.leases`: claims, takeovers, renewals, releases
- `dalsegno.store.locks`: lock keys
- `dalsegno.store.tasks`: graphs, tasks, attempts, the owner's batches
- `dalsegno.store.reads`, `dalsegno.store.agents`: the web UI's reads, the agent queue
- `dalsegno.store.access`: tokens and web UI sessions
- `dalsegno.store.deployments`, `dalsegno.store.instances`: blueprints, deployments and
  node instances

Backends subclass `SQLStore` and override only how their engines are made and how they
ride out faults.
"""

from __future__ import annotations

from dalsegno.store.access import AccessQueries
from dalsegno.store.agents import AgentQueue
from dalsegno.store.deployments import Deployments
from dalsegno.store.instances import NodeInstances
from dalsegno.store.leases import Leases
from dalsegno.store.reads import StoreReads
from dalsegno.store.tasks import Tasks


class SQLStore(Leases, Tasks, StoreReads, AgentQueue, AccessQueries, Deployments, NodeInstances):
    """A `Store` on two SQLAlchemy engines: one for writes, one for reads."""
