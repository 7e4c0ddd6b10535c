"""A graph too large to draw task by task, drawn as a graph of groups.

A group is a run of consecutive dependency layers holding at most `GROUP_LIMIT` tasks; a
layer larger than that (a wide fan-out) is cut into parts of `GROUP_LIMIT`, in the order
the layout gives its tasks. Groups are drawn as boxes with their counts by state, with an
arrow wherever a task of one depends on a task of another, and a group can be expanded to
show its tasks inside its frame. So 5,000 or 50,000 tasks are 25 or 250 boxes, and one
failure among them is a red box, not a sliver of a bar.

Tasks that carry a subgraph key (`subgraph_of`) are grouped by that key instead, one
group per key: the grouping a workflow's author chose beats the layers. Grouping depends
only on the graph's tasks and edges, which never change once stored, so a group's key
stays the same across live refreshes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from dalsegno.service.reads import TaskRecord
from dalsegno.ui.layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    Arrow,
    Drawing,
    Frame,
    columns,
    lay_out,
    layers,
    place,
    route,
)
from dalsegno.ui.rendering import TASK_STATES

GROUP_LIMIT = 200
GROUP_WIDTH = 210
GROUP_HEIGHT = 78
GROUP_ROWS = 8  # group boxes in one column before it wraps
FRAME_PAD = 10
FRAME_HEADER = 26
# The state that colours a group: the one a person must see first.
WORST_FIRST = ("failed", "rescheduled", "started", "sent", "pending", "succeeded")


@dataclass(slots=True)
class Group:
    key: str  # stable: `L3`, `L3-9`, `L4.2` (part 2 of layer 4), `S:name` (a subgraph)
    label: str
    task_ids: list[int]
    first: str = ""  # the keys of its first and last task, which tell what is inside
    last: str = ""


def group_tasks(
    tasks: Sequence[TaskRecord],
    edges: Sequence[tuple[int, int]],
    subgraph_of: Callable[[TaskRecord], str | None] = lambda _: None,
) -> list[Group]:
    """The graph's groups, in the order of their layers.

    A subgraph's group is one node among the layers, so a run of layers never holds tasks
    both before and after it: a run closes at each layer that holds a subgraph.
    """
    by_key: dict[str, Group] = {}
    item_of: dict[int, int | str] = {}
    for task in tasks:
        subgraph = subgraph_of(task)
        if subgraph is None:
            item_of[task.id] = task.id
        else:
            group = by_key.setdefault(subgraph, Group(f"S:{subgraph}", subgraph, []))
            group.task_ids.append(task.id)
            item_of[task.id] = group.key
    layered: list[list[int | str]]
    if by_key:
        between: list[tuple[int | str, int | str]] = sorted(
            {
                (item_of[a], item_of[b])
                for a, b in edges
                if a in item_of and b in item_of and item_of[a] != item_of[b]
            },
            key=str,
        )
        items: list[int | str] = list(dict.fromkeys(item_of.values()))
        layered = cast("list[list[int | str]]", layers(items, between))
    else:
        layered = cast("list[list[int | str]]", columns(tasks, edges))
    found = list(by_key.values())
    run: list[int] = []
    first = last = 0
    for number, held in enumerate(layered):
        layer = [item for item in held if isinstance(item, int)]
        if len(layer) > GROUP_LIMIT:
            found.extend(_close(run, first, last))
            run = []
            parts = -(-len(layer) // GROUP_LIMIT)
            for part in range(parts):
                chunk = layer[part * GROUP_LIMIT : (part + 1) * GROUP_LIMIT]
                found.append(Group(f"L{number}.{part + 1}", _part(number, part, parts), chunk))
            continue
        if run and len(run) + len(layer) > GROUP_LIMIT:
            found.extend(_close(run, first, last))
            run = []
        if layer:
            first = first if run else number
            run.extend(layer)
            last = number
        if len(layer) < len(held):  # a subgraph is in this layer: what follows is after it
            found.extend(_close(run, first, last))
            run = []
    found.extend(_close(run, first, last))
    keys = {task.id: task.key for task in tasks}
    for group in found:
        group.first, group.last = keys[group.task_ids[0]], keys[group.task_ids[-1]]
    return found


def _close(run: list[int], first: int, last: int) -> list[Group]:
    if not run:
        return []
    if first == last:
        return [Group(f"L{first}", f"layer {first + 1}", run)]
    return [Group(f"L{first}-{last}", f"layers {first + 1}-{last + 1}", run)]


def _part(number: int, part: int, parts: int) -> str:
    return f"layer {number + 1} · part {part + 1} of {parts}"


def counts_of(tasks: Iterable[TaskRecord]) -> dict[str, int]:
    """How many of `tasks` are in each state (every state named, 0 included)."""
    found = dict.fromkeys(TASK_STATES, 0)
    for state, count in Counter(task.status for task in tasks).items():
        found[state.value] = count
    return found


def worst(counts: dict[str, int]) -> str:
    return next((state for state in WORST_FIRST if counts.get(state)), "pending")


def lay_out_groups(
    groups: Sequence[Group],
    tasks: Sequence[TaskRecord],
    edges: Sequence[tuple[int, int]],
    expanded: set[str],
    inside: Callable[[Group, tuple[int, int]], Drawing] | None = None,
    notes: Mapping[str, str] | None = None,
) -> Drawing:
    """The graph of groups: a box per group, its tasks drawn inside those `expanded`
    (by `inside` when given: a subgraph's, with the boxes of those within), and under its
    label the `notes` of each (a subgraph's state and retries)."""
    notes = notes or {}

    def picture(group: Group, origin: tuple[int, int]) -> Drawing:
        if inside is not None and group.key.startswith("S:"):
            return inside(group, origin)
        return lay_out(members[group.key], inner[group.key], origin, group.key)

    by_id = {task.id: task for task in tasks}
    group_of = {task_id: group.key for group in groups for task_id in group.task_ids}
    inner: dict[str, list[tuple[int, int]]] = {group.key: [] for group in groups}
    between: set[tuple[str, str]] = set()
    for follower, dependency in edges:
        if follower not in group_of or dependency not in group_of:
            continue
        to, of = group_of[follower], group_of[dependency]
        if to == of:
            inner[to].append((follower, dependency))
        else:
            between.add((to, of))
    members = {group.key: [by_id[task_id] for task_id in group.task_ids] for group in groups}
    pictures = {group.key: picture(group, (0, 0)) for group in groups if group.key in expanded}
    sizes = {
        group.key: (
            (max(GROUP_WIDTH, pictures[group.key].width + 2 * FRAME_PAD),
             pictures[group.key].height + FRAME_HEADER + FRAME_PAD)
            if group.key in pictures
            else (GROUP_WIDTH, GROUP_HEIGHT)
        )
        for group in groups
    }  # fmt: skip
    placement = place(
        layers([g.key for g in groups], sorted(between)), sizes.__getitem__, GROUP_ROWS
    )
    drawing = Drawing(placement.width, placement.height)
    for group in groups:
        counts = counts_of(members[group.key])
        x, y = placement.at[group.key]
        width, height = sizes[group.key]
        drawing.frames.append(
            Frame(group.key, group.label, len(group.task_ids), counts, group.first,
                  group.last, worst(counts), x, y, width, height, group.key in pictures,
                  notes.get(group.key, ""))
        )  # fmt: skip
        if group.key in pictures:  # laid out again, inside its frame
            drawn = picture(group, (x + FRAME_PAD, y + FRAME_HEADER))
            drawing.nodes.extend(drawn.nodes)
            drawing.arrows.extend(drawn.arrows)
            drawing.boxes.extend(drawn.boxes)
    for to, of in sorted(between):
        path = route(placement, of, sizes[of], to, sizes[to])
        drawing.arrows.append(Arrow(path, "group"))
    return drawing


__all__ = ["GROUP_LIMIT", "NODE_HEIGHT", "NODE_WIDTH", "Group", "group_tasks", "lay_out_groups"]
