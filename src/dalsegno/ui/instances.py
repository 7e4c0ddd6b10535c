"""The picture of a deployment's node instances and their relationships, laid out on the
server as the task graphs are (`dalsegno.ui.layout`): each instance a box in the column of
its longest chain of relationships, so an arrow goes from a target (installed first) to
the instance that has the relationship. A box is filled by its instance's state (SVG
presentation attributes: the page's Content-Security-Policy allows no inline style)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dalsegno.model.blueprints import InstanceState, NodeInstance
from dalsegno.ui.layout import label, layers, place, route

BOX = (190, 42)
S = InstanceState
# fill colours: not begun, under way, half made, up, going away, gone
FILLS = {
    S.UNINITIALIZED: "#e5e7eb",
    S.CREATING: "#fde68a",
    S.CREATED: "#bfdbfe",
    S.CONFIGURING: "#fde68a",
    S.CONFIGURED: "#93c5fd",
    S.STARTING: "#fde68a",
    S.STARTED: "#86efac",
    S.STOPPING: "#fdba74",
    S.STOPPED: "#d1d5db",
    S.DELETING: "#fdba74",
    S.DELETED: "#9ca3af",
}
DASHES = {"contained_in": "", "depends_on": "6 4", "connected_to": "2 3"}


@dataclass(frozen=True, slots=True)
class Box:
    id: str
    node: str
    label: str
    state: str
    fill: str
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Line:
    path: str
    kind: str  # the relationship's type
    dash: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class Picture:
    width: int
    height: int
    boxes: list[Box]
    lines: list[Line]


def instance_picture(instances: Sequence[NodeInstance]) -> Picture:
    """Where each instance's box and each relationship's arrow go."""
    ids = [instance.id for instance in instances]
    known = set(ids)
    edges = [
        (instance.id, link.target_id)
        for instance in instances
        for link in instance.links
        if link.target_id in known
    ]
    placement = place(layers(ids, edges), lambda _: BOX)
    boxes = [
        Box(
            instance.id,
            instance.node,
            label(instance.id, 24),
            str(instance.state),
            FILLS.get(InstanceState(instance.state), "#ffffff"),
            *placement.at[instance.id],
        )
        for instance in instances
    ]
    lines = [
        Line(
            route(placement, link.target_id, BOX, instance.id, BOX),
            link.type,
            DASHES.get(link.type, ""),
            instance.id,
            link.target_id,
        )
        for instance in instances
        for link in instance.links
        if link.target_id in known
    ]
    return Picture(placement.width, placement.height, boxes, lines)
