"""GraphSpec: keys, dependencies and cycle detection of a task graph as it is built."""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dalsegno.model.errors import GraphError
from dalsegno.model.graph import GraphSpec, TaskSpec


def spec(key: str, operation: str = "tasks:provision") -> TaskSpec:
    return TaskSpec(key=key, operation=operation, agent=None, kwargs={})


def graph_of(*keys: str, name: str = "main") -> GraphSpec:
    graph = GraphSpec(name)
    for key in keys:
        graph.add(spec(key))
    return graph


def cycle_named_in(error: pytest.ExceptionInfo[GraphError]) -> list[str]:
    message = str(error.value)
    assert "dependency cycle: " in message
    return message.split("dependency cycle: ", 1)[1].split(" -> ")


# --- keys -------------------------------------------------------------------------------


def test_auto_keys_count_occurrences_of_each_operation() -> None:
    graph = GraphSpec("main")
    keys = [graph.auto_key(name) for name in ("provision", "install", "provision", "provision")]
    assert keys == ["provision", "install", "provision#2", "provision#3"]
    assert graph.auto_key("install") == "install#2"


def test_auto_keys_are_counted_per_graph() -> None:
    first, second = GraphSpec("main"), GraphSpec("cleanup")
    assert first.auto_key("provision") == "provision"
    assert second.auto_key("provision") == "provision"
    assert first.auto_key("provision") == "provision#2"


def test_tasks_keep_the_order_they_were_added_in() -> None:
    graph = graph_of("c", "a", "b")
    assert list(graph.tasks) == ["c", "a", "b"]


def test_add_returns_the_spec() -> None:
    graph = GraphSpec("main")
    task = spec("vm1")
    assert graph.add(task) is task
    assert graph.tasks["vm1"] is task


def test_duplicate_key_is_refused_naming_it() -> None:
    graph = graph_of("vm1")
    with pytest.raises(GraphError, match="graph 'main': duplicate task key 'vm1'"):
        graph.add(spec("vm1", operation="tasks:other"))
    assert graph.tasks["vm1"].operation == "tasks:provision"


def test_empty_key_is_refused() -> None:
    with pytest.raises(GraphError, match="cannot be empty"):
        GraphSpec("main").add(spec(""))


# --- dependencies -------------------------------------------------------------------------


def test_depend_records_edges_and_returns_the_new_ones() -> None:
    graph = graph_of("vm1", "vm2", "app")
    assert graph.depend("app", ["vm1", "vm2"]) == [("app", "vm1"), ("app", "vm2")]
    assert graph.depend("app", ["vm2"]) == []  # already there: a no-op
    assert graph.edges() == [("app", "vm1"), ("app", "vm2")]
    assert graph.dependencies == {"app": ["vm1", "vm2"]}


@pytest.mark.parametrize(
    ("task", "on", "unknown"),
    [("app", ["vm9"], "vm9"), ("nope", ["vm1"], "nope"), ("app", ["vm1", "ghost"], "ghost")],
)
def test_depend_on_an_unknown_key_is_refused_naming_it(
    task: str, on: list[str], unknown: str
) -> None:
    graph = graph_of("vm1", "app")
    with pytest.raises(GraphError, match=f"graph 'main': unknown task key '{unknown}'"):
        graph.depend(task, on)
    assert graph.edges() == []


def test_self_dependency_is_refused() -> None:
    graph = graph_of("app")
    with pytest.raises(GraphError, match="task 'app' cannot depend on itself"):
        graph.depend("app", ["app"])
    assert graph.edges() == []


def test_a_refused_depend_adds_no_edge() -> None:
    graph = graph_of("vm1", "app")
    with pytest.raises(GraphError, match="cannot depend on itself"):
        graph.depend("app", ["vm1", "app"])
    # All or nothing: the edge to vm1 of the refused call must not stay behind.
    assert graph.edges() == []


# --- cycles ---------------------------------------------------------------------------------


def test_an_acyclic_graph_passes() -> None:
    graph = graph_of("vm1", "vm2", "db", "app")
    graph.depend("app", ["vm1", "vm2", "db"])
    graph.depend("db", ["vm1"])
    graph.check_acyclic()


def test_an_empty_graph_passes() -> None:
    GraphSpec("main").check_acyclic()


def test_cycle_is_named_task_by_task() -> None:
    graph = graph_of("a", "b", "c")
    graph.depend("a", ["b"])
    graph.depend("b", ["c"])
    graph.depend("c", ["a"])
    with pytest.raises(GraphError) as error:
        graph.check_acyclic()
    assert str(error.value) == "graph 'main': dependency cycle: a -> b -> c -> a"


def test_two_task_cycle() -> None:
    graph = graph_of("x", "y")
    graph.depend("x", ["y"])
    graph.depend("y", ["x"])
    with pytest.raises(GraphError) as error:
        graph.check_acyclic()
    assert cycle_named_in(error) == ["x", "y", "x"]


def test_only_the_tasks_on_the_cycle_are_named() -> None:
    # "a" waits on the cycle b -> c -> d -> b and "z" waits on "a": neither is on it.
    graph = graph_of("a", "b", "c", "d", "z", "free")
    graph.depend("a", ["b"])
    graph.depend("b", ["c"])
    graph.depend("c", ["d"])
    graph.depend("d", ["b"])
    graph.depend("z", ["a"])
    with pytest.raises(GraphError) as error:
        graph.check_acyclic()
    assert str(error.value) == "graph 'main': dependency cycle: b -> c -> d -> b"


# --- large graphs ---------------------------------------------------------------------------

LARGE = 100_000


def chain(size: int) -> GraphSpec:
    graph = GraphSpec("big")
    keys = [f"t{i}" for i in range(size)]
    for key in keys:
        graph.add(spec(key))
    for before, after in itertools.pairwise(keys):
        graph.depend(after, [before])
    return graph


def fastest(action: Callable[[], object], runs: int = 3) -> float:
    """The best of `runs` timings: what the code costs, not what a loaded machine adds."""
    best = float("inf")
    gc.collect()
    gc.disable()  # a collection pass that happens to fall inside one run is not its cost
    try:
        for _ in range(runs):
            started = time.perf_counter()
            action()
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return best


# A quadratic step would take minutes at these sizes; linear work takes well under 0.2 s.
# The best of three runs is compared, so a loaded machine does not fail the test.
def assert_well_under_a_second(seconds: float, what: str) -> None:
    assert seconds < 1.0, f"{what} took {seconds:.3f}s"


def test_a_chain_of_100k_tasks_is_checked_in_well_under_a_second() -> None:
    assert_well_under_a_second(fastest(chain(LARGE).check_acyclic), "checking the chain")


def test_a_cycle_through_100k_tasks_is_found_in_well_under_a_second() -> None:
    graph = chain(LARGE)
    graph.depend("t0", [f"t{LARGE - 1}"])

    def check() -> None:
        with pytest.raises(GraphError) as error:
            graph.check_acyclic()
        named = cycle_named_in(error)
        assert len(named) == LARGE + 1
        assert named[0] == named[-1]

    assert_well_under_a_second(fastest(check), "finding the cycle")


def test_a_fan_in_of_30k_dependencies_is_recorded_in_well_under_a_second() -> None:
    # g.depend(app, on=vms) with many vms: recording edges must stay linear.
    size = 30_000
    keys = [f"vm{i}" for i in range(size)]

    def record() -> None:
        graph = GraphSpec("big")
        graph.add(spec("app"))
        for key in keys:
            graph.add(spec(key))
        graph.depend("app", keys)
        assert len(graph.edges()) == size

    assert_well_under_a_second(fastest(record), "recording the fan-in")


# --- properties -----------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    """Tasks in a random order, and edges (task, dependency) that follow a hidden order."""
    size = draw(st.integers(min_value=1, max_value=25))
    order = [f"t{i}" for i in range(size)]  # a task may only depend on earlier ones
    pairs = st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)).filter(
        lambda pair: pair[0] != pair[1]
    )
    edges = [
        (order[max(i, j)], order[min(i, j)]) for i, j in draw(st.lists(pairs, max_size=3 * size))
    ]
    return draw(st.permutations(order)), edges


def build(keys: list[str], edges: list[tuple[str, str]]) -> GraphSpec:
    graph = graph_of(*keys)
    for task, dependency in edges:
        graph.depend(task, [dependency])
    return graph


def reachable(graph: GraphSpec, start: str) -> set[str]:
    """Every task `start` waits on, directly or not."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for dependency in graph.dependencies.get(stack.pop(), []):
            if dependency not in seen:
                seen.add(dependency)
                stack.append(dependency)
    return seen


@settings(max_examples=200, deadline=None)
@given(dags())
def test_random_dags_never_raise(dag: tuple[list[str], list[tuple[str, str]]]) -> None:
    keys, edges = dag
    build(keys, edges).check_acyclic()


@settings(max_examples=200, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_always_raises_naming_a_cycle_through_it(
    dag: tuple[list[str], list[tuple[str, str]]], data: st.DataObject
) -> None:
    keys, edges = dag
    graph = build(keys, edges)
    waiting = [key for key in keys if reachable(graph, key)]
    if not waiting:
        # No edge at all: close a cycle between any two tasks instead.
        if len(keys) < 2:
            return
        graph.depend(keys[0], [keys[1]])
        waiting = [keys[0]]
    task = data.draw(st.sampled_from(waiting))
    upstream = data.draw(st.sampled_from(sorted(reachable(graph, task))))
    graph.depend(upstream, [task])  # the back edge: upstream now waits on its dependent

    with pytest.raises(GraphError) as error:
        graph.check_acyclic()
    named = cycle_named_in(error)
    assert named[0] == named[-1]
    assert len(set(named)) == len(named) - 1
    steps = list(itertools.pairwise(named))
    for before, after in steps:
        assert after in graph.dependencies[before], f"{before} -> {after} is not an edge"
    # The graph was acyclic before, so every cycle goes through the new edge.
    assert (upstream, task) in steps
