"""Subgraphs in the picture (docs/ui.md, "Subgraphs"): each one a labelled box around its
tasks, nested ones inside their parent, laid out level by level.

A level (the graph, or a subgraph) is laid out as any graph is (`layers` and `place`), its
nodes being its own tasks and the boxes of the subgraphs in it, each box as large as its
inside laid out the same way. So an arrow from or to a subgraph leaves or enters its box,
as the edge it draws joins the subgraph as one node; an arrow between two tasks of a level
joins their boxes. A box's label says the subgraph's key, its state and its retry count
("retry 1/3"). Linear in tasks, subgraphs and edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dalsegno.model.graph import expand
from dalsegno.model.records import StoredGraph, SubgraphRecord, TaskRecord
from dalsegno.model.states import TaskState
from dalsegno.ui.layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    Arrow,
    Drawing,
    Node,
    Placement,
    label,
    layers,
    place,
    route,
)

BOX_PAD = 10
BOX_HEADER = 24
BOX_MIN_WIDTH = NODE_WIDTH + 2 * BOX_PAD
# The colour class of each shown state (the states of tasks, which the page's CSS knows).
STATE_CLASS = {"succeeded": "succeeded", "failed": "failed", "ignored": "failed",
               "failing": "failed", "retrying": "rescheduled", "running": "started",
               "pending": "pending"}  # fmt: skip
S = TaskState


@dataclass(frozen=True, slots=True)
class Box:
    """A subgraph drawn around its tasks."""

    key: str
    parent: str | None
    state: str  # pending, running, retrying, succeeded, failed, ignored
    retries: str  # "retry 1/3", "retry 2/∞"; empty for a subgraph without retries
    x: int
    y: int
    width: int
    height: int

    @property
    def css(self) -> str:
        return STATE_CLASS[self.state]

    @property
    def text(self) -> str:
        return box_text(self.key, self.state, self.retries)


def box_text(key: str, state: str, retries: str) -> str:
    shown = "failed (ignored)" if state == "ignored" else state
    return " · ".join(part for part in (label(key, 40), shown, retries) if part)


def retry_text(sub: SubgraphRecord) -> str:
    if sub.max_retries == 0 and not sub.retries:
        return ""
    return f"retry {sub.retries}/{'∞' if sub.max_retries < 0 else sub.max_retries}"


def state_of(sub: SubgraphRecord, tasks: Sequence[TaskRecord]) -> str:
    """What a subgraph is doing, from its stored state and its tasks' states: `failing` has
    a failed task inside (it waits for its running ones to retry or fail, or a subgraph
    around it failed first)."""
    if sub.status == "failed":
        return "ignored" if sub.ignored else "failed"
    if sub.status == "retrying":
        return "retrying"
    if tasks and all(task.status is S.SUCCEEDED or task.ignored for task in tasks):
        return "succeeded"
    if any(task.status is S.FAILED and not task.ignored for task in tasks):
        return "failing"
    if any(task.status is not S.PENDING for task in tasks):
        return "running"  # begun: a task runs, or ran
    return "pending"


@dataclass(slots=True)
class Nested:
    """A stored graph's levels: what each holds, and the edges between its nodes."""

    stored: StoredGraph
    subs: dict[str, SubgraphRecord] = field(default_factory=dict)
    children: dict[str | None, list[int | str]] = field(default_factory=dict)  # ids, keys
    edges: dict[str | None, list[tuple[int | str, int | str]]] = field(default_factory=dict)
    members: dict[str, list[TaskRecord]] = field(default_factory=dict)

    @classmethod
    def of(cls, stored: StoredGraph) -> Nested:
        found = cls(stored, {sub.key: sub for sub in stored.subgraphs})
        level_of: dict[int | str, str | None] = {}
        for sub in stored.subgraphs:
            found.children.setdefault(sub.parent, []).append(sub.key)
            level_of[sub.key] = sub.parent
            found.members[sub.key] = []
        by_key: dict[str, int] = {}
        for task in stored.tasks:
            found.children.setdefault(task.subgraph, []).append(task.id)
            level_of[task.id] = task.subgraph
            by_key[task.key] = task.id
            inside = task.subgraph
            while inside is not None:
                found.members[inside].append(task)
                inside = found.subs[inside].parent
        pairs: list[tuple[int | str, int | str]] = list(stored.edges)
        pairs += [(by_key.get(a, a), by_key.get(b, b)) for a, b in stored.node_edges]
        for follower, dependency in pairs:
            if level_of.get(follower, 0) == level_of.get(dependency, 1):
                found.edges.setdefault(level_of[follower], []).append((follower, dependency))
        return found

    def task_edges(self) -> list[tuple[int, int]]:
        """Every edge between two tasks, those that edges with a subgraph on a side stand
        for included (what the scheduler waits for)."""
        stored = self.stored
        by_id = {task.id: task.key for task in stored.tasks}
        ids = {task.key: task.id for task in stored.tasks}
        added = expand(
            {task.key: task.subgraph for task in stored.tasks},
            {sub.key: sub.parent for sub in stored.subgraphs},
            stored.node_edges,
            [(by_id[a], by_id[b]) for a, b in stored.edges],
        )
        return [*stored.edges, *((ids[a], ids[b]) for a, b in added)]

    def top(self, key: str | None) -> str | None:
        """The outermost subgraph `key` is in (itself at the top)."""
        while key is not None and self.subs[key].parent is not None:
            key = self.subs[key].parent
        return key


def lay_out_nested(
    nested: Nested, level: str | None = None, origin: tuple[int, int] = (0, 0), group: str = ""
) -> Drawing:
    """The picture of `level` (the graph, or the inside of a subgraph): its tasks and the
    boxes of its subgraphs, each with its own inside, moved to `origin`."""
    tasks = {task.id: task for task in nested.stored.tasks}
    placements: dict[str | None, Placement] = {}
    sizes: dict[int | str, tuple[int, int]] = {}

    def measure(at: str | None) -> Placement:
        for child in nested.children.get(at, []):
            if isinstance(child, str):
                inside = measure(child)
                sizes[child] = (max(BOX_MIN_WIDTH, inside.width), inside.height + BOX_HEADER)
            else:
                sizes[child] = (NODE_WIDTH, NODE_HEIGHT)
        placements[at] = place(
            layers(nested.children.get(at, []), nested.edges.get(at, [])), sizes.__getitem__
        )
        return placements[at]

    top = measure(level)
    drawing = Drawing(top.width, top.height)

    def draw(at: str | None, dx: int, dy: int) -> None:
        placement = placements[at]
        placement.at = {item: (x + dx, y + dy) for item, (x, y) in placement.at.items()}
        placement.band_bottoms = [bottom + dy for bottom in placement.band_bottoms]
        for child in nested.children.get(at, []):
            x, y = placement.at[child]
            if isinstance(child, str):
                sub = nested.subs[child]
                width, height = sizes[child]
                state = state_of(sub, nested.members[child])
                drawing.boxes.append(
                    Box(child, sub.parent, state, retry_text(sub), x, y, width, height)
                )
                draw(child, x, y + BOX_HEADER)
            else:
                task = tasks[child]
                drawing.nodes.append(
                    Node(task.id, task.key, label(task.key), task.status.value, x, y, group)
                )
        for follower, dependency in nested.edges.get(at, []):
            path = route(placement, dependency, sizes[dependency], follower, sizes[follower])
            if isinstance(dependency, str):
                shown = state_of(nested.subs[dependency], nested.members[dependency])
                drawing.arrows.append(Arrow(path, "succeeded" if shown == "succeeded" else "sub"))
            else:
                drawing.arrows.append(Arrow(path, tasks[dependency].status.value, dependency))

    draw(level, *origin)
    return drawing


def live_boxes(nested: Nested) -> dict[str, dict[str, Any]]:
    """Each subgraph's state (its colour class, whether its failure is ignored) and label,
    for a live refresh."""
    found = {}
    for key, sub in nested.subs.items():
        state = state_of(sub, nested.members[key])
        found[key] = {
            "state": STATE_CLASS[state],
            "ignored": state == "ignored",
            "text": box_text(key, state, retry_text(sub)),
        }
    return found
