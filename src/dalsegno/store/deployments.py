"""Blueprints, deployments and node instances (docs/lifecycle.md).

A blueprint is stored once, as uploaded and as parsed; a deployment with every one of its
node instances in one transaction; a scale adds and removes instances (and the links to
them) in one transaction. The changes a lifecycle task makes to its instances are written
by the owner's batch (`apply`), in the transaction of the task's move
(`apply_instance_changes`). Refusals change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    String,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from dalsegno.model.blueprints import (
    Blueprint,
    BlueprintRecord,
    DeploymentRecord,
    InstanceLink,
    InstanceState,
    NodeInstance,
)
from dalsegno.model.errors import ConflictError, NotFoundError
from dalsegno.model.records import InstanceChange
from dalsegno.model.states import EXECUTION_END_STATES
from dalsegno.store import tables as t
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


def instance_of(row: Any) -> NodeInstance:
    return NodeInstance(
        id=row.id,
        deployment_id=row.deployment_id,
        node=row.node,
        state=InstanceState(row.state),
        runtime_properties=json.loads(row.runtime_properties),
        links=tuple(InstanceLink.from_json(link) for link in json.loads(row.links)),
        host_id=row.host_id,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _links_json(links: Sequence[InstanceLink]) -> str:
    return json.dumps([link.to_json() for link in links])


def _instance_row(
    instance: NodeInstance, deployment_id: str, position: int, now: float
) -> dict[str, Any]:
    return {
        "id": instance.id,
        "deployment_id": deployment_id,
        "node": instance.node,
        "state": InstanceState(instance.state).value,
        "runtime_properties": json.dumps(instance.runtime_properties, allow_nan=False),
        "links": _links_json(instance.links),
        "host_id": instance.host_id,
        "version": 0,
        "position": position,
        "created_at": now,
        "updated_at": now,
    }


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
            if self._exists(conn, t.blueprints, blueprint_id):
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
            if not self._exists(conn, t.blueprints, blueprint_id):
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
            _instance_row(instance, deployment.id, position, now)
            for position, instance in enumerate(instances)
        ]
        with self._write() as conn:
            if not self._exists(conn, t.blueprints, deployment.blueprint_id):
                msg = f"unknown blueprint: {deployment.blueprint_id}"
                raise NotFoundError(msg)
            if self._exists(conn, t.deployments, deployment.id):
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
                self._refuse_taken(conn, [row["id"] for row in rows])
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
            if not self._exists(conn, t.deployments, deployment_id):
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

    # node instances ------------------------------------------------------------------

    @retried("listing the instances of deployment {deployment_id}")
    def list_instances(self, deployment_id: str) -> list[NodeInstance]:
        """The deployment's instances in the order they were planned (a scale's last)."""
        i = t.node_instances.c
        with self._read() as conn:
            rows = conn.execute(
                select(t.node_instances)
                .where(i.deployment_id == deployment_id)
                .order_by(i.position)
            ).all()
        return [instance_of(row) for row in rows]

    @retried("reading node instances")
    def get_instances(self, instance_ids: Sequence[str]) -> dict[str, NodeInstance]:
        """The instances of `instance_ids` that exist, by id."""
        if not instance_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                select(t.node_instances).where(t.node_instances.c.id.in_(list(instance_ids)))
            ).all()
        return {row.id: instance_of(row) for row in rows}

    def change_instances(
        self,
        deployment_id: str,
        added: Sequence[NodeInstance] = (),
        removed: Sequence[str] = (),
        new_links: Mapping[str, Sequence[InstanceLink]] | None = None,
        dropped_links: Mapping[str, Sequence[InstanceLink]] | None = None,
    ) -> None:
        """A scale, in one transaction: instances added, instances removed, and the links
        existing instances gain (to added targets) or lose (to removed ones)."""
        now = clock()
        i = t.node_instances.c
        with self._write() as conn:
            if not self._exists(conn, t.deployments, deployment_id):
                msg = f"unknown deployment: {deployment_id}"
                raise NotFoundError(msg)
            if added:
                self._refuse_taken(conn, [instance.id for instance in added])
                last = conn.execute(
                    select(func.max(i.position)).where(i.deployment_id == deployment_id)
                ).scalar()
                first = 0 if last is None else last + 1
                conn.execute(
                    insert(t.node_instances),
                    [
                        _instance_row(instance, deployment_id, first + n, now)
                        for n, instance in enumerate(added)
                    ],
                )
            changed = set(new_links or {}) | set(dropped_links or {})
            for instance_id in sorted(changed - set(removed)):
                row = conn.execute(
                    select(i.links, i.version).where(
                        i.id == instance_id, i.deployment_id == deployment_id
                    )
                ).first()
                if row is None:
                    continue
                links = [InstanceLink.from_json(link) for link in json.loads(row.links)]
                drop = set((dropped_links or {}).get(instance_id, ()))
                links = [link for link in links if link not in drop]
                links.extend(
                    link for link in (new_links or {}).get(instance_id, ()) if link not in links
                )
                conn.execute(
                    update(t.node_instances)
                    .where(i.id == instance_id)
                    .values(links=_links_json(links), version=row.version + 1, updated_at=now)
                )
            if removed:
                conn.execute(
                    delete(t.node_instances).where(
                        i.deployment_id == deployment_id, i.id.in_(list(removed))
                    )
                )

    def update_instances(self, changes: Sequence[InstanceChange]) -> None:
        """Write instance changes outside a running execution (in one transaction)."""
        with self._write() as conn:
            write_instance_changes(conn, changes)

    @staticmethod
    def _refuse_taken(conn: Connection, instance_ids: list[str]) -> None:
        taken = conn.execute(
            select(t.node_instances.c.id).where(t.node_instances.c.id.in_(instance_ids)).limit(1)
        ).scalar()
        if taken is not None:
            msg = f"node instance id '{taken}' is taken"
            raise ConflictError(msg)

    @staticmethod
    def _exists(conn: Connection, table: Any, key: str) -> bool:
        return conn.execute(select(table.c.id).where(table.c.id == key)).first() is not None


# One statement for every instance of a batch: a state and runtime properties, each kept
# when not given (NULL).
_INSTANCE_UPDATE = (
    update(t.node_instances)
    .where(t.node_instances.c.id == bindparam("b_id"))
    .values(
        state=func.coalesce(bindparam("b_state", type_=String), t.node_instances.c.state),
        runtime_properties=func.coalesce(
            bindparam("b_properties", type_=Text), t.node_instances.c.runtime_properties
        ),
        version=t.node_instances.c.version + 1,
        updated_at=bindparam("b_now", type_=Float),
    )
)


def write_instance_changes(conn: Connection, changes: Sequence[InstanceChange]) -> None:
    """Apply `changes` in the caller's transaction (the owner's batch, `Tasks.apply`), in
    their order: a new state, and runtime properties set or removed key by key on the
    stored ones; every write bumps the version. An instance removed since (a scale down)
    is skipped. One read of the properties changed and one update, for the whole batch."""
    folded: dict[str, tuple[str | None, dict[str, Any]]] = {}
    gone = object()
    for change in changes:
        state, keys = folded.get(change.instance_id, (None, {}))
        for key in change.unset_properties:
            keys[key] = gone
        keys.update(change.set_properties)
        folded[change.instance_id] = (change.state or state, keys)
    i = t.node_instances.c
    wanted = [key for key, (_, keys) in folded.items() if keys]
    stored: dict[str, str] = {}
    if wanted:
        stored = dict(
            conn.execute(
                select(i.id, i.runtime_properties).where(i.id.in_(wanted)).with_for_update()
            ).all()
        )
    now = clock()
    rows = []
    for instance_id, (state, keys) in folded.items():
        properties = None
        if keys:
            if instance_id not in stored:
                continue
            merged = json.loads(stored[instance_id])
            for key, value in keys.items():
                if value is gone:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            properties = json.dumps(merged, allow_nan=False)
        rows.append(
            {
                "b_id": instance_id,
                "b_state": None if state is None else InstanceState(state).value,
                "b_properties": properties,
                "b_now": now,
            }
        )
    if rows:
        conn.execute(_INSTANCE_UPDATE, rows)
