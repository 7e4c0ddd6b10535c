"""Blueprints and deployments (docs/lifecycle.md).

A blueprint is stored once, as uploaded and as parsed; a deployment with every one of its
node instances in one transaction (`dalsegno.store.instances` keeps the instances). A
blueprint is deleted only when no deployment uses it, a deployment only when no execution
of it is active and (unless forced) none of its instances exists. Refusals change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
)

from dalsegno.model.blueprints import (
    Blueprint,
    BlueprintRecord,
    DeploymentRecord,
    InstanceState,
    NodeInstance,
)
from dalsegno.model.errors import ConflictError, NotFoundError
from dalsegno.model.states import EXECUTION_END_STATES
from dalsegno.store import tables as t
from dalsegno.store.instances import instance_row, refuse_taken
from dalsegno.store.retry import retried
from dalsegno.store.statements import clock

# A deployment is deleted without --force only when none of its instances exists any more.
GONE_STATES = (InstanceState.UNINITIALIZED.value, InstanceState.DELETED.value)
_ENDED = [state.value for state in EXECUTION_END_STATES]


def _blueprint_of(row: Any) -> BlueprintRecord:
    return BlueprintRecord(
        row.id, row.source, Blueprint.from_json(json.loads(row.plan)), row.created_at
    )


def _deployment_of(row: Any) -> DeploymentRecord:
    return DeploymentRecord(row.id, row.blueprint_id, json.loads(row.inputs), row.created_at)


class Deployments:
    """The queries of blueprints, deployments and node instances; `_write` and `_read`
    come from `SQLStore`."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    # blueprints ----------------------------------------------------------------------

    def put_blueprint(
        self, blueprint_id: str, source: str, blueprint: Blueprint
    ) -> BlueprintRecord:
        """Store a new blueprint; refused when the id is taken."""
        now = clock()
        plan = json.dumps(blueprint.to_json(), allow_nan=False)
        with self._write() as conn:
            if exists(conn, t.blueprints, blueprint_id):
                msg = f"blueprint '{blueprint_id}' already exists"
                raise ConflictError(msg)
            conn.execute(
                insert(t.blueprints).values(
                    id=blueprint_id, source=source, plan=plan, created_at=now
                )
            )
        return BlueprintRecord(blueprint_id, source, blueprint, now)

    @retried("reading blueprint {blueprint_id}")
    def get_blueprint(self, blueprint_id: str) -> BlueprintRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.blueprints).where(t.blueprints.c.id == blueprint_id)
            ).first()
        return None if row is None else _blueprint_of(row)

    @retried("listing blueprints")
    def list_blueprints(self) -> list[BlueprintRecord]:
        with self._read() as conn:
            rows = conn.execute(select(t.blueprints).order_by(t.blueprints.c.id)).all()
        return [_blueprint_of(row) for row in rows]

    def delete_blueprint(self, blueprint_id: str) -> None:
        """Delete a blueprint; refused while a deployment uses it."""
        with self._write() as conn:
            if not exists(conn, t.blueprints, blueprint_id):
                msg = f"unknown blueprint: {blueprint_id}"
                raise NotFoundError(msg)
            users = (
                conn.execute(
                    select(t.deployments.c.id)
                    .where(t.deployments.c.blueprint_id == blueprint_id)
                    .order_by(t.deployments.c.id)
                )
                .scalars()
                .all()
            )
            if users:
                msg = (
                    f"Cannot delete blueprint '{blueprint_id}': used by deployment"
                    f"{'s' if len(users) > 1 else ''} {', '.join(users)}"
                )
                raise ConflictError(msg)
            conn.execute(delete(t.blueprints).where(t.blueprints.c.id == blueprint_id))

    # deployments ---------------------------------------------------------------------

    def create_deployment(
        self, deployment: DeploymentRecord, instances: Sequence[NodeInstance]
    ) -> DeploymentRecord:
        """Store a deployment with every one of its node instances, in one transaction."""
        now = clock()
        inputs = json.dumps(deployment.inputs, allow_nan=False)
        rows = [
            instance_row(instance, deployment.id, position, now)
            for position, instance in enumerate(instances)
        ]
        with self._write() as conn:
            if not exists(conn, t.blueprints, deployment.blueprint_id):
                msg = f"unknown blueprint: {deployment.blueprint_id}"
                raise NotFoundError(msg)
            if exists(conn, t.deployments, deployment.id):
                msg = f"deployment '{deployment.id}' already exists"
                raise ConflictError(msg)
            conn.execute(
                insert(t.deployments).values(
                    id=deployment.id,
                    blueprint_id=deployment.blueprint_id,
                    inputs=inputs,
                    created_at=now,
                )
            )
            if rows:
                refuse_taken(conn, [row["id"] for row in rows])
                conn.execute(insert(t.node_instances), rows)
        return DeploymentRecord(deployment.id, deployment.blueprint_id, deployment.inputs, now)

    @retried("reading deployment {deployment_id}")
    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.deployments).where(t.deployments.c.id == deployment_id)
            ).first()
        return None if row is None else _deployment_of(row)

    @retried("listing deployments")
    def list_deployments(self) -> list[DeploymentRecord]:
        with self._read() as conn:
            rows = conn.execute(select(t.deployments).order_by(t.deployments.c.id)).all()
        return [_deployment_of(row) for row in rows]

    def delete_deployment(self, deployment_id: str, force: bool = False) -> None:
        """Delete a deployment and its instances. Refused while an execution of it is
        active, and (unless `force`) while an instance exists (not `uninitialized` or
        `deleted`): uninstall it first."""
        with self._write() as conn:
            if not exists(conn, t.deployments, deployment_id):
                msg = f"unknown deployment: {deployment_id}"
                raise NotFoundError(msg)
            active = conn.execute(
                select(t.executions.c.id)
                .where(
                    t.executions.c.deployment_id == deployment_id,
                    t.executions.c.status.not_in(_ENDED),
                )
                .limit(1)
            ).scalar()
            if active is not None:
                msg = (
                    f"Cannot delete deployment '{deployment_id}': execution {active} of it "
                    "is active"
                )
                raise ConflictError(msg)
            if not force:
                live = conn.execute(
                    select(func.count())
                    .select_from(t.node_instances)
                    .where(
                        t.node_instances.c.deployment_id == deployment_id,
                        t.node_instances.c.state.not_in(GONE_STATES),
                    )
                ).scalar_one()
                if live:
                    msg = (
                        f"Cannot delete deployment '{deployment_id}': {live} of its instances "
                        "are not deleted (run uninstall first, or use --force)"
                    )
                    raise ConflictError(msg)
            i = t.node_instances.c
            conn.execute(delete(t.node_instances).where(i.deployment_id == deployment_id))
            conn.execute(delete(t.deployments).where(t.deployments.c.id == deployment_id))


def exists(conn: Connection, table: Any, key: str) -> bool:
    """Whether `table` has a row of id `key`."""
    return conn.execute(select(table.c.id).where(table.c.id == key)).first() is not None
