"""What the execution page shows of its graphs: every task while a graph stays readable, a
graph of groups beyond that, and one page of the task table.

A graph of at most `DRAW_LIMIT` tasks is drawn task by task, as long as the page draws at
most `PAGE_DRAW_LIMIT` tasks in all; a larger one is drawn as a graph of groups
(`dalsegno.ui.groups`), whose groups a person expands one by one. So the page of a
10,000-task execution costs one read of its tasks, some dozens of boxes and one page of
rows, never 10,000 boxes.

The same view, without its layout, feeds the live refresh (`live_state`): the state of
each task drawn, the counts of each group, and the failed tasks in the order they failed,
which the page's script applies in place, keeping the viewport and the selection.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from dalsegno.service.reads import StoredGraph, TaskRecord
from dalsegno.ui.groups import Group, counts_of, group_tasks, lay_out_groups, worst
from dalsegno.ui.layout import Drawing, lay_out
from dalsegno.ui.rendering import TASK_STATES
from dalsegno.ui.subgraphs import Nested, box_text, lay_out_nested, live_boxes, retry_text, state_of

DRAW_LIMIT = 300
PAGE_DRAW_LIMIT = 600
PAGE_SIZE = 50
TARGETS = 200  # failed tasks (or search matches) the page can go to, in order
# Beyond this many outermost subgraphs (a lifecycle install of many node instances, each
# its own), layers group their tasks as any graph's: a group per subgraph would not bound
# what the page draws.
SUBGRAPH_GROUPS = 50


@dataclass(slots=True)
class GraphView:
    name: str
    total: int
    counts: dict[str, int]
    groups: list[Group] | None  # None: drawn task by task
    expanded: set[str] = field(default_factory=set)
    drawing: Drawing | None = None  # None until laid out (a live refresh never is)

    @property
    def group_of(self) -> dict[int, str]:
        return {task_id: g.key for g in self.groups or () for task_id in g.task_ids}


@dataclass(slots=True)
class ExecutionView:
    graphs: list[GraphView]
    total: int
    counts: dict[str, int]
    rows: list[TaskRecord]
    matching: int  # tasks the table's filters select
    page: int
    pages: int
    graph: str = ""
    state: str = ""
    query: str = ""
    graph_names: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.counts.get("succeeded", 0)

    @property
    def expand(self) -> list[str]:
        """The expanded groups as the `expand` query parameter has them (`graph/key`)."""
        return [f"{view.name}/{key}" for view in self.graphs for key in sorted(view.expanded)]


# A stored graph never changes (its tasks and edges commit together, once), so its groups
# are computed once per graph and reused by every page and refresh that shows it.
_GROUPS: OrderedDict[tuple[int, int], list[Group]] = OrderedDict()
_GROUPS_LOCK = threading.Lock()
GROUPS_KEPT = 64


def groups_of(stored: StoredGraph) -> list[Group]:
    """The groups of a stored graph (cached by its id and its shape: ids can be used again
    after a purge)."""
    key = (stored.id, hash((tuple(task.id for task in stored.tasks), tuple(stored.edges))))
    with _GROUPS_LOCK:
        found = _GROUPS.get(key)
        if found is not None:
            _GROUPS.move_to_end(key)
            return found
    if stored.subgraphs:  # each outermost subgraph is a group, while they are few
        nested = Nested.of(stored)
        tops = sum(1 for sub in stored.subgraphs if sub.parent is None)
        found = group_tasks(
            stored.tasks,
            nested.task_edges(),
            (lambda task: nested.top(task.subgraph)) if tops <= SUBGRAPH_GROUPS else _none,
        )
    else:
        found = group_tasks(stored.tasks, stored.edges)
    with _GROUPS_LOCK:
        _GROUPS[key] = found
        while len(_GROUPS) > GROUPS_KEPT:
            _GROUPS.popitem(last=False)
    return found


def _none(_task: TaskRecord) -> str | None:
    return None


def parse_expand(values: list[str]) -> dict[str, set[str]]:
    """`expand=GRAPH/KEY` parameters as the groups to expand in each graph."""
    found: dict[str, set[str]] = {}
    for value in values:
        name, sep, key = value.rpartition("/")
        if sep and key:
            found.setdefault(name, set()).add(key)
    return found


def execution_view(
    graphs: dict[str, StoredGraph],
    graph: str = "",
    state: str = "",
    page: int = 1,
    *,
    query: str = "",
    expand: dict[str, set[str]] | None = None,
    draw: bool = True,
) -> ExecutionView:
    """The graphs and the table's page `page` of tasks matching the filters (`graph`,
    `state`, a key containing `query`; empty for all, an unknown one counts as empty).
    With `draw`, the graphs are laid out too (a live refresh does without)."""
    graph = graph if graph in graphs else ""
    state = state if state in TASK_STATES else ""
    query = query.strip()
    expand = expand or {}
    views = []
    drawn = 0
    for name, stored in graphs.items():
        size = len(stored.tasks)
        view = GraphView(name, size, counts_of(stored.tasks), None)
        if size > DRAW_LIMIT or drawn + size > PAGE_DRAW_LIMIT:
            view.groups = groups_of(stored)
            view.expanded = _expandable(view.groups, expand.get(name, set()), PAGE_DRAW_LIMIT)
        else:
            drawn += size
        if draw:
            view.drawing = _draw(stored, view)
        views.append(view)
    everything = [task for stored in graphs.values() for task in stored.tasks]
    lowered = query.lower()
    matching = [
        task
        for task in everything
        if (not graph or task.graph == graph)
        and (not state or task.status.value == state)
        and (not query or lowered in task.key.lower())
    ]
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    failed = sorted(
        (task for task in everything if task.status.value == "failed"),
        key=lambda task: (task.ended_at is None, task.ended_at or 0.0, task.id),
    )
    return ExecutionView(
        views,
        len(everything),
        counts_of(everything),
        rows,
        len(matching),
        page,
        pages,
        graph,
        state,
        query,
        list(graphs),
        _targets(views, failed),
        _targets(views, matching) if query else [],
    )


def _draw(stored: StoredGraph, view: GraphView) -> Drawing:
    """A graph's picture: task by task (its subgraphs as boxes around their tasks), or as
    groups (each outermost subgraph one group, its boxes drawn inside once it is open)."""
    if not stored.subgraphs:
        if view.groups is None:
            return lay_out(stored.tasks, stored.edges)
        return lay_out_groups(view.groups, stored.tasks, stored.edges, view.expanded)
    nested = Nested.of(stored)
    if view.groups is None:
        return lay_out_nested(nested)
    return lay_out_groups(
        view.groups,
        stored.tasks,
        nested.task_edges(),
        view.expanded,
        lambda group, origin: lay_out_nested(
            nested, group.key.removeprefix("S:"), origin, group.key
        ),
        _notes(nested),
    )


def _notes(nested: Nested) -> dict[str, str]:
    """What the group of each outermost subgraph says under its label: its state and its
    retries."""
    found = {}
    for key, sub in nested.subs.items():
        if sub.parent is None:
            state = state_of(sub, nested.members[key])
            found[f"S:{key}"] = box_text("", state, retry_text(sub))
    return found


def _expandable(groups: list[Group], wanted: set[str], budget: int) -> set[str]:
    """The wanted groups that exist, as many as the page may draw tasks of."""
    found: set[str] = set()
    for group in groups:
        if group.key in wanted and len(group.task_ids) <= budget:
            found.add(group.key)
            budget -= len(group.task_ids)
    return found


def _targets(views: list[GraphView], tasks: list[TaskRecord]) -> list[dict[str, Any]]:
    """Where each task is: its graph, and its group when the graph is drawn as groups."""
    group_of = {view.name: view.group_of for view in views}
    return [
        {"id": task.id, "key": task.key, "graph": task.graph,
         "group": group_of.get(task.graph, {}).get(task.id, "")}
        for task in tasks[:TARGETS]
    ]  # fmt: skip


def live_state(view: ExecutionView, graphs: dict[str, StoredGraph], status: str) -> dict[str, Any]:
    """What the page's script applies at each refresh: the execution's state, the state of
    each task drawn, the counts of each group, and where the failed tasks are."""
    tasks: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    boxes: dict[str, dict[str, Any]] = {}
    for graph in view.graphs:
        stored = graphs[graph.name]
        notes: dict[str, str] = {}
        if stored.subgraphs:
            nested = Nested.of(stored)
            boxes.update((f"{graph.name}/{k}", v) for k, v in live_boxes(nested).items())
            notes = _notes(nested)
        if graph.groups is None:
            tasks.update({str(task.id): task.status.value for task in stored.tasks})
            continue
        by_id = {task.id: task for task in stored.tasks}
        for group in graph.groups:
            members = [by_id[task_id] for task_id in group.task_ids]
            counts = counts_of(members)
            groups[f"{graph.name}/{group.key}"] = {
                "counts": counts,
                "worst": worst(counts),
                "note": notes.get(group.key, ""),
            }
            if group.key in graph.expanded:
                tasks.update({str(task.id): task.status.value for task in members})
    return {
        "status": status,
        "signature": signature(view),
        "tasks": tasks,
        "groups": groups,
        "subgraphs": boxes,
        "failed": view.failed,
        "matches": view.matches,
        "expand": view.expand,
    }


def signature(view: ExecutionView) -> str:
    """Changes when the picture must be drawn again: a graph appeared, or the groups
    expanded changed."""
    return "|".join(f"{g.name}:{g.total}:{','.join(sorted(g.expanded))}" for g in view.graphs)
