"""The web UI's graph layout and session cookies, module by module."""

from __future__ import annotations

from typing import Any

from dalsegno.model.records import StoredGraph, SubgraphRecord
from dalsegno.model.states import TaskState
from dalsegno.service.reads import TaskRecord
from dalsegno.ui.layout import NODE_WIDTH, columns, label, lay_out


def task(task_id: int, key: str | None = None, status: str = "pending") -> TaskRecord:
    return TaskRecord(
        task_id, "e", "main", key or f"t{task_id}", "m:op", None, "{}", 0, 0.0, None,
        TaskState(status), 0, None, None, 0, None, None, None,
    )  # fmt: skip


def test_each_task_sits_in_the_column_of_its_longest_chain() -> None:
    # 1 -> 2 -> 4 and 1 -> 4 and 3 alone: 4 waits for 2, so it is in column 2, not 1.
    tasks = [task(i) for i in (1, 2, 3, 4)]
    edges = [(2, 1), (4, 2), (4, 1)]
    assert columns(tasks, edges) == [[1, 3], [2], [4]]


def test_arrows_point_right_and_boxes_do_not_overlap() -> None:
    tasks = [task(i) for i in range(1, 8)]
    edges = [(2, 1), (3, 1), (4, 2), (5, 3), (6, 4), (6, 5), (7, 6)]
    drawing = lay_out(tasks, edges)
    place = {node.task_id: (node.x, node.y) for node in drawing.nodes}
    for after, before in edges:
        assert place[after][0] >= place[before][0] + NODE_WIDTH
    assert len(set(place.values())) == len(tasks)
    assert len(drawing.arrows) == len(edges)
    assert all(node.x + NODE_WIDTH <= drawing.width for node in drawing.nodes)


def test_a_follower_is_placed_beside_what_it_depends_on() -> None:
    # two chains a1 -> a2 and b1 -> b2 whose tasks are stored interleaved in reverse
    tasks = [task(1, "a1"), task(2, "b1"), task(3, "b2"), task(4, "a2")]
    assert columns(tasks, [(4, 1), (3, 2)]) == [[1, 2], [4, 3]]


def test_a_long_key_is_cut_for_its_box_but_kept_whole() -> None:
    drawing = lay_out([task(1, "k" * 80)], [])
    [node] = drawing.nodes
    assert node.key == "k" * 80
    assert len(node.label) == 22
    assert "…" in node.label
    # its start and its end are shown: what tells keys like these apart
    assert label("eu-west-3/web-042/verify") == "eu-west-3/w…042/verify"


def test_a_cycle_never_hangs_the_layout() -> None:
    tasks = [task(1), task(2), task(3)]
    placed = [task_id for column in columns(tasks, [(1, 2), (2, 1), (3, 1)]) for task_id in column]
    assert sorted(placed) == [1, 2, 3]


def test_a_hundred_chains_of_a_hundred_make_a_hundred_columns() -> None:
    tasks = [task(i) for i in range(10_000)]
    edges = [(i, i - 100) for i in range(100, 10_000)]
    layers = columns(tasks, edges)
    assert len(layers) == 100
    assert all(len(layer) == 100 for layer in layers)


def test_a_tall_column_wraps_and_its_followers_stay_to_the_right() -> None:
    # root -> 100 tasks -> sink: the middle column wraps into 3 of at most 40 rows
    tasks = [task(i) for i in range(102)]
    edges = [(i, 0) for i in range(1, 101)] + [(101, i) for i in range(1, 101)]
    drawing = lay_out(tasks, edges)
    xs = {node.task_id: node.x for node in drawing.nodes}
    assert len({xs[i] for i in range(1, 101)}) == 3
    assert max(node.y for node in drawing.nodes) < 40 * 42 + 12
    assert all(xs[101] > xs[i] for i in range(101))
    assert all(xs[i] > xs[0] for i in range(1, 102))


# folding and groups --------------------------------------------------------------------


def test_a_long_chain_folds_into_bands_a_screen_can_show() -> None:
    from dalsegno.ui.layout import lay_out

    tasks = [task(i) for i in range(1, 291)]
    edges = [(i + 1, i) for i in range(1, 290)]
    drawing = lay_out(tasks, edges)
    assert drawing.width < 4000, "a 290-task chain is a block, not a 65,000 px strip"
    assert drawing.width / drawing.height < 4
    rows = sorted({node.y for node in drawing.nodes})
    assert len(rows) > 1
    # every arrow leaves its dependency's right side and enters its follower's left side
    place = {node.task_id: (node.x, node.y) for node in drawing.nodes}
    for arrow in drawing.arrows:
        assert arrow.source is not None
        x1, y1 = place[arrow.source]
        assert arrow.path.startswith(f"M{x1 + NODE_WIDTH},{y1 + 15} ")
    assert len({(node.x, node.y) for node in drawing.nodes}) == 290


def test_a_small_graph_is_never_folded() -> None:
    tasks = [task(i) for i in range(1, 6)]
    drawing = lay_out(tasks, [(i + 1, i) for i in range(1, 5)])
    assert len({node.y for node in drawing.nodes}) == 1


def test_groups_are_runs_of_layers_of_at_most_200_tasks_and_a_wide_layer_is_cut() -> None:
    from dalsegno.ui.groups import group_tasks

    # 50 layers of 100, each task depending on one of the layer before
    tasks = [
        task(layer * 100 + j + 1, f"L{layer:02d}-{j:03d}")
        for layer in range(50)
        for j in range(100)
    ]
    edges = [
        (layer * 100 + j + 1, (layer - 1) * 100 + j + 1)
        for layer in range(1, 50)
        for j in range(100)
    ]
    groups = group_tasks(tasks, edges)
    assert [g.key for g in groups][:3] == ["L0-1", "L2-3", "L4-5"]
    assert all(len(g.task_ids) == 200 for g in groups)
    assert groups[0].label == "layers 1-2"
    assert sorted(i for g in groups for i in g.task_ids) == [t.id for t in tasks]
    # one layer of 450: parts of 200, 200 and 50
    wide = [task(i) for i in range(1, 451)]
    parts = group_tasks(wide, [])
    assert [(g.key, len(g.task_ids)) for g in parts] == [("L0.1", 200), ("L0.2", 200), ("L0.3", 50)]
    assert parts[2].label == "layer 1 · part 3 of 3"
    assert group_tasks(wide, []) == parts  # the same graph, the same groups: keys are stable


def test_a_subgraph_key_becomes_the_group() -> None:
    from dalsegno.ui.groups import group_tasks

    tasks = [task(i) for i in range(1, 7)]
    groups = group_tasks(tasks, [], subgraph_of=lambda t: "install" if t.id <= 3 else None)
    assert [(g.key, g.task_ids) for g in groups] == [("S:install", [1, 2, 3]), ("L0", [4, 5, 6])]


def test_a_graph_of_groups_counts_states_and_opens_one_group_in_place() -> None:
    from dalsegno.ui.groups import group_tasks, lay_out_groups

    tasks = [task(i, status="failed" if i == 250 else "succeeded") for i in range(1, 401)]
    tasks += [task(401, "end")]
    edges = [(401, i) for i in range(1, 401)]
    groups = group_tasks(tasks, edges)
    assert [g.key for g in groups] == ["L0.1", "L0.2", "L1"]
    closed = lay_out_groups(groups, tasks, edges, set())
    assert closed.nodes == []
    assert [(f.key, f.worst, f.counts["failed"]) for f in closed.frames] == [
        ("L0.1", "succeeded", 0),
        ("L0.2", "failed", 1),
        ("L1", "pending", 0),
    ]
    assert len(closed.arrows) == 2  # each part of the wide layer to the end: once
    opened = lay_out_groups(groups, tasks, edges, {"L0.2"})
    assert {node.group for node in opened.nodes} == {"L0.2"}
    assert len(opened.nodes) == 200
    frame = next(f for f in opened.frames if f.key == "L0.2")
    assert frame.expanded
    for node in opened.nodes:  # drawn inside their frame
        assert frame.x <= node.x and node.x + NODE_WIDTH <= frame.x + frame.width
        assert frame.y <= node.y and node.y <= frame.y + frame.height


# subgraphs -------------------------------------------------------------------------------


def nested_graph(sub_status: str = "pending", inner_status: str = "pending") -> StoredGraph:
    """a -> S{ b -> C{ c, d } -> e } -> f, each task pending but `b` succeeded."""
    from dataclasses import replace

    tasks = [
        task(1, "a", "succeeded"),
        replace(task(2, "b", "succeeded"), subgraph="S"),
        replace(task(3, "c"), subgraph="C"),
        replace(task(4, "d"), subgraph="C"),
        replace(task(5, "e"), subgraph="S"),
        task(6, "f"),
    ]
    subs = [
        SubgraphRecord("S", None, 3, 0.0, status=sub_status, retries=1),
        SubgraphRecord("C", "S", 0, 0.0, on_failure="ignore", status=inner_status),
    ]
    node_edges = [("S", "a"), ("f", "S"), ("C", "b"), ("e", "C")]
    return StoredGraph(1, "main", tasks, [], subs, node_edges)


def encloses(box: Any, x: int, y: int, width: int, height: int) -> bool:
    return (
        box.x <= x and x + width <= box.x + box.width
        and box.y <= y and y + height <= box.y + box.height
    )  # fmt: skip


def test_a_subgraph_is_a_box_around_its_tasks_and_a_nested_one_inside_its_parent() -> None:
    from dalsegno.ui.layout import NODE_HEIGHT
    from dalsegno.ui.subgraphs import Nested, lay_out_nested

    drawing = lay_out_nested(Nested.of(nested_graph()))
    boxes = {box.key: box for box in drawing.boxes}
    nodes = {node.key: node for node in drawing.nodes}
    assert [box.key for box in drawing.boxes] == ["S", "C"]  # outer first: drawn behind
    assert set(nodes) == {"a", "b", "c", "d", "e", "f"}
    inside = {"S": {"b", "c", "d", "e"}, "C": {"c", "d"}}
    for key, box in boxes.items():
        for name, node in nodes.items():
            drawn_in = encloses(box, node.x, node.y, NODE_WIDTH, NODE_HEIGHT)
            assert drawn_in == (name in inside[key]), (key, name)
    outer, inner = boxes["S"], boxes["C"]
    assert encloses(outer, inner.x, inner.y, inner.width, inner.height)
    # every arrow points right; those from and to a subgraph leave and enter its box
    assert len(drawing.arrows) == 4
    ends = {(a.path.split()[0], a.path.split()[-1]) for a in drawing.arrows}
    a, f = nodes["a"], nodes["f"]
    middle = outer.y + outer.height // 2
    assert (f"M{a.x + NODE_WIDTH},{a.y + 15}", f"{outer.x - 4},{middle}") in ends
    assert (
        f"M{outer.x + outer.width},{outer.y + outer.height // 2}",
        f"{f.x - 4},{f.y + 15}",
    ) in ends
    assert a.x + NODE_WIDTH < outer.x and outer.x + outer.width < f.x
    assert nodes["b"].x + NODE_WIDTH < inner.x < inner.x + inner.width < nodes["e"].x
    assert all(n.x + NODE_WIDTH <= drawing.width and n.y <= drawing.height for n in nodes.values())


def test_a_box_says_its_subgraphs_state_and_retries() -> None:
    from dalsegno.ui.subgraphs import Nested, lay_out_nested

    boxes = {b.key: b for b in lay_out_nested(Nested.of(nested_graph("retrying"))).boxes}
    assert boxes["S"].text == "S · retrying · retry 1/3"
    assert boxes["S"].css == "rescheduled"
    assert boxes["C"].text == "C · pending"  # no retries: no retry count
    failed = {b.key: b for b in lay_out_nested(Nested.of(nested_graph("pending", "failed"))).boxes}
    assert failed["C"].text == "C · failed (ignored)"
    assert failed["S"].text == "S · running · retry 1/3"  # b succeeded, the rest to run


def test_at_scale_a_subgraph_is_one_group_with_its_counts_and_opens_with_its_boxes() -> None:
    from dataclasses import replace

    from dalsegno.ui.graphs import execution_view
    from dalsegno.ui.layout import NODE_HEIGHT

    # 150 before -> S{ 100 tasks, C{ 100 tasks } } -> 150 after: 500 tasks
    tasks = [task(i, f"pre{i:03d}", "succeeded") for i in range(150)]
    tasks += [replace(task(150 + i, f"s{i:03d}", "failed" if i == 7 else "succeeded"),
                      subgraph="S") for i in range(100)]  # fmt: skip
    tasks += [replace(task(250 + i, f"c{i:03d}"), subgraph="C") for i in range(100)]
    tasks += [task(350 + i, f"post{i:03d}") for i in range(150)]
    subs = [
        SubgraphRecord("S", None, 2, 0.0, status="failed", retries=2, error="task 's007'"),
        SubgraphRecord("C", "S", 0, 0.0),
    ]
    edges = [(i, i - 1) for i in range(1, 150)] + [(i, i - 1) for i in range(351, 500)]
    node_edges = [("S", "pre149"), ("post000", "S"), ("C", "s099")]
    stored = StoredGraph(1, "main", tasks, edges, subs, node_edges)
    view = execution_view({"main": stored}).graphs[0]
    assert view.groups is not None and view.drawing is not None
    frames = {frame.key: frame for frame in view.drawing.frames}
    sub = frames["S:S"]  # the whole subgraph, nested one included, is one node
    assert sub.total == 200 and sub.counts["failed"] == 1 and sub.counts["succeeded"] == 99
    assert sub.worst == "failed" and not sub.expanded
    assert sub.note == "failed · retry 2/2"
    assert view.drawing.nodes == [] and view.drawing.boxes == []
    # the groups before it are to its left, those after it to its right: no group holds
    # tasks from both sides
    for key, frame in frames.items():
        if key != "S:S":
            first = frame.first
            assert (frame.x < sub.x) == first.startswith("pre"), key
    opened = execution_view({"main": stored}, expand={"main": {"S:S"}}).graphs[0].drawing
    assert opened is not None
    frame = next(f for f in opened.frames if f.key == "S:S")
    assert frame.expanded and len(opened.nodes) == 200
    [inner] = opened.boxes
    assert inner.key == "C"
    assert encloses(frame, inner.x, inner.y, inner.width, inner.height)
    for node in opened.nodes:
        assert encloses(frame, node.x, node.y, NODE_WIDTH, NODE_HEIGHT)
        in_c = encloses(inner, node.x, node.y, NODE_WIDTH, NODE_HEIGHT)
        assert in_c == node.key.startswith("c"), node.key


def test_many_small_subgraphs_at_scale_are_grouped_by_layers_not_one_group_each() -> None:
    from dataclasses import replace

    from dalsegno.ui.graphs import SUBGRAPH_GROUPS, execution_view

    # 80 subgraphs of 5 tasks, each after the one before: a lifecycle install of 80 nodes
    count = SUBGRAPH_GROUPS + 30
    tasks = [
        replace(task(i * 5 + j, f"n{i:02d}/{j}"), subgraph=f"n{i:02d}")
        for i in range(count)
        for j in range(5)
    ]
    edges = [(i * 5 + j, i * 5 + j - 1) for i in range(count) for j in range(1, 5)]
    subs = [SubgraphRecord(f"n{i:02d}", None, 1, 0.0) for i in range(count)]
    node_edges = [(f"n{i:02d}", f"n{i - 1:02d}") for i in range(1, count)]
    view = execution_view({"main": StoredGraph(1, "main", tasks, edges, subs, node_edges)})
    groups = view.graphs[0].groups
    assert groups is not None
    assert not any(group.key.startswith("S:") for group in groups)
    assert len(groups) == 2  # 400 tasks in layers of 200, in their order
    assert groups[0].first == "n00/0" and groups[1].first == "n40/0"
