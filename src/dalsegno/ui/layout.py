"""Graphs laid out on the server for an SVG picture: layered, longest path, folded to fit.

Each box (a task, or a group of tasks) sits in the column of its longest chain of
dependencies, so every arrow points right; within a column, boxes are ordered by the mean
row of what they depend on (one barycentre sweep), which keeps chains straight and fans
tidy. A column taller than `max_rows` wraps into several side by side, and a picture much
wider than it is tall (a long chain) folds into bands, one under the other, like lines of
text: an arrow that goes on in the next band runs through the gap between the two. So a
chain of 300 tasks is a block a screen can show, not a 7,000 px strip. Linear in boxes and
edges.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from dalsegno.service.reads import TaskRecord

if TYPE_CHECKING:
    from dalsegno.ui.subgraphs import Box

K = TypeVar("K", bound=Hashable)

NODE_WIDTH = 170
NODE_HEIGHT = 30
COLUMN_GAP = 56
ROW_GAP = 12
BAND_GAP = 40
PAD = 12
LABEL_CHARS = 22
MAX_ROWS = 40
ASPECT = 2.0  # the width:height a folded picture aims at (a screen is wider than tall)
FOLD_WIDTH = 1400  # a picture narrower than this is never folded; a band is at least this


@dataclass(frozen=True, slots=True)
class Node:
    task_id: int
    key: str
    label: str
    status: str
    x: int
    y: int
    group: str = ""  # the group it was drawn in, when its group is expanded


@dataclass(frozen=True, slots=True)
class Arrow:
    path: str  # an SVG path: from the dependency's right side to the follower's left side
    status: str  # the dependency's state (a task), which decides whether it is "done"
    source: int | None = None  # the dependency's task id; None for an arrow between groups


@dataclass(frozen=True, slots=True)
class Frame:
    """A group of tasks: a box with its counts by state, or, expanded, around its tasks."""

    key: str
    label: str
    total: int
    counts: dict[str, int]
    first: str  # the keys of its first and last task
    last: str
    worst: str  # the state that colours it: failed before running before the rest
    x: int
    y: int
    width: int
    height: int
    expanded: bool
    note: str = ""  # a subgraph's state and retries


@dataclass(slots=True)
class Drawing:
    width: int
    height: int
    nodes: list[Node] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)  # subgraphs, outer ones first


@dataclass(slots=True)
class Placement:
    """Where each box's top-left corner goes, in which band, and how big it all is."""

    at: dict[Hashable, tuple[int, int]]
    band: dict[Hashable, int]
    band_bottoms: list[int]
    width: int
    height: int


def label(key: str, width: int = LABEL_CHARS) -> str:
    """A key cut to fit its box: its start and its end, which tell keys apart best
    (`eu-west-3/web-042/verify` becomes `eu-west-3/w…042/verify`)."""
    if len(key) <= width:
        return key
    tail = (width - 1) // 2
    return key[: width - 1 - tail] + "…" + key[-tail:]


def layers(ids: Sequence[K], edges: Iterable[tuple[K, K]]) -> list[list[K]]:
    """Ids by column (longest path from one without dependencies), each column ordered.

    `edges` are (follower, dependency) pairs; pairs naming an unknown id are ignored.
    """
    known = set(ids)
    needs: dict[K, list[K]] = defaultdict(list)
    feeds: dict[K, list[K]] = defaultdict(list)
    for follower, dependency in edges:
        if follower in known and dependency in known:
            needs[follower].append(dependency)
            feeds[dependency].append(follower)
    none: list[K] = []
    waiting = {item: len(needs[item]) for item in needs}
    column = dict.fromkeys(ids, 0)
    ready = deque(item for item in ids if item not in waiting)
    while ready:
        item = ready.popleft()
        for follower in feeds.get(item, none):
            column[follower] = max(column[follower], column[item] + 1)
            waiting[follower] -= 1
            if waiting[follower] == 0:
                ready.append(follower)
    # A cycle cannot be stored; should one appear, its members stay in column 0, still shown.
    found: list[list[K]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for item in ids:
        found[column[item]].append(item)
    row: dict[K, float] = {}
    for here in found:
        if not needs:  # no edge at all: the order given is the order shown
            break
        for item in here:
            above = [row[dependency] for dependency in needs.get(item, none) if dependency in row]
            row[item] = sum(above) / len(above) if above else -1.0
        here.sort(key=row.__getitem__)
        for index, item in enumerate(here):
            row[item] = float(index)
    return found


def columns(tasks: Sequence[TaskRecord], edges: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Task ids by column (`layers` of the tasks)."""
    return layers([task.id for task in tasks], edges)


def place(
    layered: Sequence[Sequence[K]],
    size: Callable[[K], tuple[int, int]],
    max_rows: int = MAX_ROWS,
) -> Placement:
    """Place boxes of `size(id)` column by column, wrapping tall columns and folding a
    picture much wider than tall into bands."""
    visual = [
        list(column[start : start + max_rows])
        for column in layered
        for start in range(0, len(column), max_rows)
    ]
    if not visual:
        return Placement({}, {}, [], 2 * PAD, 2 * PAD)
    widths = [max(size(item)[0] for item in column) for column in visual]
    heights = [
        sum(size(item)[1] for item in column) + ROW_GAP * (len(column) - 1) for column in visual
    ]
    strip = sum(widths) + COLUMN_GAP * (len(visual) - 1)
    band = max(heights) + BAND_GAP
    bands = max(1, min(round(math.sqrt(strip / (ASPECT * band))), strip // FOLD_WIDTH))
    per_band = math.ceil(len(visual) / bands)
    at: dict[Hashable, tuple[int, int]] = {}
    band_of: dict[Hashable, int] = {}
    bottoms: list[int] = []
    top, width = PAD, 0
    for band in range(0, len(visual), per_band):
        x, tallest = PAD, 0
        for index in range(band, min(band + per_band, len(visual))):
            y = top
            for item in visual[index]:
                at[item] = (x, y)
                band_of[item] = len(bottoms)
                y += size(item)[1] + ROW_GAP
            tallest = max(tallest, heights[index])
            x += widths[index] + COLUMN_GAP
        width = max(width, x - COLUMN_GAP + PAD)
        bottoms.append(top + tallest)
        top += tallest + BAND_GAP
    return Placement(at, band_of, bottoms, width, bottoms[-1] + PAD)


def route(
    placement: Placement,
    source: Hashable,
    source_size: tuple[int, int],
    target: Hashable,
    target_size: tuple[int, int],
) -> str:
    """The SVG path of an arrow from `source`'s right side to `target`'s left side.

    Within a band it is a curve to the right; into a later band it leaves to the right,
    runs left along the gap under the source's band, and comes into the target from its
    left.
    """
    (x1, y1), (x2, y2) = placement.at[source], placement.at[target]
    x1, y1, y2 = x1 + source_size[0], y1 + source_size[1] // 2, y2 + target_size[1] // 2
    x2 -= 4  # leave room for the arrow head
    if placement.band[source] == placement.band[target] and x2 > x1:
        bend = COLUMN_GAP // 2
        return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
    gap = placement.band_bottoms[placement.band[source]] + BAND_GAP // 2
    right, left = x1 + COLUMN_GAP // 3, max(x2 - COLUMN_GAP // 3, 2)
    return f"M{x1},{y1} H{right} V{gap} H{left} V{y2} H{x2}"


def lay_out(
    tasks: Sequence[TaskRecord],
    edges: Sequence[tuple[int, int]],
    origin: tuple[int, int] = (0, 0),
    group: str = "",
) -> Drawing:
    """Where each task's box and each dependency's arrow go; `origin` moves it all (into a
    group's frame, for one)."""
    by_id = {task.id: task for task in tasks}
    box = (NODE_WIDTH, NODE_HEIGHT)
    placement = place(columns(tasks, edges), lambda _: box)
    dx, dy = origin
    placement.at = {item: (x + dx, y + dy) for item, (x, y) in placement.at.items()}
    placement.band_bottoms = [bottom + dy for bottom in placement.band_bottoms]
    nodes = [
        Node(task.id, task.key, label(task.key), task.status.value, *placement.at[task.id], group)
        for task in tasks
    ]
    arrows = [
        Arrow(route(placement, dependency, box, follower, box), by_id[dependency].status.value,
              dependency)
        for follower, dependency in edges
        if follower in placement.at and dependency in placement.at
    ]  # fmt: skip
    return Drawing(placement.width, placement.height, nodes, arrows)
