"""Node instances: listed, read, added and removed by a scale (one transaction), and the
changes lifecycle tasks make, written in the transaction of the owner's batch
(`write_instance_changes`, called by `Tasks.apply`; docs/lifecycle.md)."""

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

from dalsegno.model.blueprints import InstanceBinding, InstanceLink, InstanceState, NodeInstance
from dalsegno.model.errors import ConflictError, NotFoundError
from dalsegno.model.records import InstanceChange
from dalsegno.store import tables as t
from dalsegno.store.retry import retried
from dalsegno.store.statements import clock


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


def instance_row(
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


def refuse_taken(conn: Connection, instance_ids: list[str]) -> None:
    """Instance ids are unique across deployments: refused when one is taken."""
    taken = conn.execute(
        select(t.node_instances.c.id).where(t.node_instances.c.id.in_(instance_ids)).limit(1)
    ).scalar()
    if taken is not None:
        msg = f"node instance id '{taken}' is taken"
        raise ConflictError(msg)


class NodeInstances:
    """The queries of node instances; `_write` and `_read` come from `SQLStore`."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

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
            found = select(t.deployments.c.id).where(t.deployments.c.id == deployment_id)
            if conn.execute(found).first() is None:
                msg = f"unknown deployment: {deployment_id}"
                raise NotFoundError(msg)
            if added:
                refuse_taken(conn, [instance.id for instance in added])
                last = conn.execute(
                    select(func.max(i.position)).where(i.deployment_id == deployment_id)
                ).scalar()
                first = 0 if last is None else last + 1
                conn.execute(
                    insert(t.node_instances),
                    [
                        instance_row(instance, deployment_id, first + n, now)
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


# One statement for every instance of a batch: a state and runtime properties, each kept
# when not given (NULL).
INSTANCE_UPDATE = (
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


def instance_start_rows(bindings: Sequence[str | None]) -> list[dict[str, Any]]:
    """The rows of `INSTANCE_UPDATE` that write the "-ing" state of the lifecycle tasks
    whose instance bindings (`tasks.instance`, JSON) are given, as their attempts start (an
    agent's claim: in its transaction); None, or a binding with no such state, writes none."""
    now = clock()
    rows = []
    for text in bindings:
        if text is None:
            continue
        binding = InstanceBinding.from_json(json.loads(text))
        if binding.starting is not None:
            rows.append(
                {
                    "b_id": binding.instance,
                    "b_state": InstanceState(binding.starting).value,
                    "b_properties": None,
                    "b_now": now,
                }
            )
    return rows


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
        conn.execute(INSTANCE_UPDATE, rows)
