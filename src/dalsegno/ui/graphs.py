"""What the execution page shows of its graphs: pictures while they stay readable, counts
by state beyond that, and one page of the task table.

A graph of at most `DRAW_LIMIT` tasks is drawn, as long as the page draws at most
`PAGE_DRAW_LIMIT` tasks in all; a larger one is collapsed to its counts by state, and its
tasks are read in the paged table (filtered by graph and state). So a page of 10,000 tasks
costs one read of the tasks and one page of rows, never 10,000 boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dalsegno.service.reads import StoredGraph, TaskRecord
from dalsegno.ui.layout import Drawing, lay_out
from dalsegno.ui.rendering import TASK_STATES

DRAW_LIMIT = 300
PAGE_DRAW_LIMIT = 600
PAGE_SIZE = 50


@dataclass(slots=True)
class GraphView:
    name: str
    total: int
    counts: dict[str, int]
    drawing: Drawing | None  # None: collapsed to its counts
    why_collapsed: str = ""


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
    graph_names: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.counts.get("succeeded", 0)


def counts_of(tasks: list[TaskRecord]) -> dict[str, int]:
    found = dict.fromkeys(TASK_STATES, 0)
    for task in tasks:
        found[task.status.value] = found.get(task.status.value, 0) + 1
    return found


def execution_view(
    graphs: dict[str, StoredGraph], graph: str, state: str, page: int
) -> ExecutionView:
    """The graphs (drawn or collapsed) and the table's page `page` of tasks matching the
    filters (`graph` and `state`, empty for all; an unknown one counts as empty)."""
    graph = graph if graph in graphs else ""
    state = state if state in TASK_STATES else ""
    views = []
    drawn = 0
    for name, stored in graphs.items():
        size = len(stored.tasks)
        counts = counts_of(stored.tasks)
        if graph and name != graph:
            views.append(GraphView(name, size, counts, None, "another graph is selected"))
        elif size > DRAW_LIMIT:
            why = f"{size} tasks: too many to draw (at most {DRAW_LIMIT})"
            views.append(GraphView(name, size, counts, None, why))
        elif drawn + size > PAGE_DRAW_LIMIT:
            views.append(GraphView(name, size, counts, None, "select it to draw it"))
        else:
            drawn += size
            views.append(GraphView(name, size, counts, lay_out(stored.tasks, stored.edges)))
    everything = [task for stored in graphs.values() for task in stored.tasks]
    matching = [
        task
        for task in everything
        if (not graph or task.graph == graph) and (not state or task.status.value == state)
    ]
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
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
        list(graphs),
    )
