"""A task graph laid out on the server for an SVG picture: layered, longest path.

Each task sits in the column of its longest chain of dependencies, so every arrow points
right; within a column, tasks are ordered by the mean row of what they depend on (one
barycentre sweep), which keeps chains straight and fans tidy. A column taller than
`MAX_ROWS` wraps into several side by side, so a fan-out of 300 stays on a screen or two.
Linear in tasks and edges.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from dalsegno.service.reads import TaskRecord

NODE_WIDTH = 170
NODE_HEIGHT = 30
COLUMN_GAP = 56
ROW_GAP = 12
PAD = 12
LABEL_CHARS = 22
MAX_ROWS = 40


@dataclass(frozen=True, slots=True)
class Node:
    task_id: int
    key: str
    label: str
    status: str
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Arrow:
    path: str  # an SVG path: from the dependency's right side to the task's left side
    status: str  # the state of the dependency, which decides whether the arrow is "done"


@dataclass(frozen=True, slots=True)
class Drawing:
    width: int
    height: int
    nodes: list[Node]
    arrows: list[Arrow]


def label(key: str) -> str:
    return key if len(key) <= LABEL_CHARS else key[: LABEL_CHARS - 1] + "…"


def columns(tasks: Sequence[TaskRecord], edges: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Task ids by column (longest path from a task without dependencies), ordered."""
    ids = [task.id for task in tasks]
    known = set(ids)
    needs: dict[int, list[int]] = defaultdict(list)
    feeds: dict[int, list[int]] = defaultdict(list)
    for task, dependency in edges:
        if task in known and dependency in known:
            needs[task].append(dependency)
            feeds[dependency].append(task)
    waiting = {task: len(needs[task]) for task in ids}
    column = dict.fromkeys(ids, 0)
    ready = deque(task for task in ids if waiting[task] == 0)
    while ready:
        task = ready.popleft()
        for follower in feeds[task]:
            column[follower] = max(column[follower], column[task] + 1)
            waiting[follower] -= 1
            if waiting[follower] == 0:
                ready.append(follower)
    # A cycle cannot be stored; should one appear, its tasks stay in column 0, still shown.
    found: list[list[int]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for task in ids:
        found[column[task]].append(task)
    row: dict[int, float] = {}
    for tasks_here in found:
        for task in tasks_here:
            above = [row[dependency] for dependency in needs[task] if dependency in row]
            row[task] = sum(above) / len(above) if above else -1.0
        tasks_here.sort(key=lambda task: row[task])
        for index, task in enumerate(tasks_here):
            row[task] = float(index)
    return found


def lay_out(tasks: Sequence[TaskRecord], edges: Sequence[tuple[int, int]]) -> Drawing:
    """Where each task's box and each dependency's arrow go."""
    by_id = {task.id: task for task in tasks}
    placed: dict[int, tuple[int, int]] = {}
    nodes = []
    # A tall column (a wide fan-out) wraps into side-by-side columns of at most MAX_ROWS.
    wrapped = [
        task_ids[start : start + MAX_ROWS]
        for task_ids in columns(tasks, edges)
        for start in range(0, len(task_ids), MAX_ROWS)
    ]
    for index, task_ids in enumerate(wrapped):
        x = PAD + index * (NODE_WIDTH + COLUMN_GAP)
        for row, task_id in enumerate(task_ids):
            y = PAD + row * (NODE_HEIGHT + ROW_GAP)
            placed[task_id] = (x, y)
            task = by_id[task_id]
            nodes.append(Node(task.id, task.key, label(task.key), task.status.value, x, y))
    arrows = []
    bend = COLUMN_GAP // 2
    for task_id, dependency in edges:
        if task_id not in placed or dependency not in placed:
            continue
        x1, y1 = placed[dependency]
        x2, y2 = placed[task_id]
        x1, y1, y2 = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2, y2 + NODE_HEIGHT // 2
        x2 -= 4  # leave room for the arrow head
        path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
        arrows.append(Arrow(path, by_id[dependency].status.value))
    tallest = max((len(task_ids) for task_ids in wrapped), default=0)
    width = 2 * PAD + len(wrapped) * NODE_WIDTH + max(len(wrapped) - 1, 0) * COLUMN_GAP
    height = 2 * PAD + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    return Drawing(width, height, nodes, arrows)
