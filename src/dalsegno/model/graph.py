"""A task graph as it is built: tasks by key, and the edges between them. No I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from dalsegno.model.errors import GraphError
from dalsegno.model.limits import too_long


@dataclass(slots=True)
class TaskSpec:
    """One node: what runs, where, with which arguments and retry policy."""

    key: str
    operation: str
    agent: str | None
    kwargs: dict[str, Any]
    retries: int | None = None
    retry_interval: float | None = None
    timeout: float | None = None
    subgraph: str | None = None  # the key of the subgraph it is in
    on_failure: str | None = None
    instance: str | None = None  # a lifecycle task's InstanceBinding, JSON


@dataclass(slots=True)
class SubgraphSpec:
    """A group of tasks that fails or retries as a unit, nested in `parent` (a subgraph's
    key, or None for the graph itself)."""

    key: str
    parent: str | None
    retries: int
    retry_interval: float
    on_failure: str


@dataclass(slots=True)
class GraphSpec:
    """A named graph: tasks in the order they were added, its subgraphs, and
    `node -> dependencies` (a node is a task or a subgraph; edges join siblings)."""

    name: str
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    subgraphs: dict[str, SubgraphSpec] = field(default_factory=dict)
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    _occurrences: dict[str, int] = field(default_factory=dict)
    _seen: dict[str, set[str]] = field(default_factory=dict)

    def auto_key(self, operation_name: str) -> str:
        """`name` for the first task of an operation, then `name#2`, `name#3`..."""
        seen = self._occurrences.get(operation_name, 0) + 1
        self._occurrences[operation_name] = seen
        return operation_name if seen == 1 else f"{operation_name}#{seen}"

    def add(self, spec: TaskSpec) -> TaskSpec:
        self._check_key(spec.key, "task")
        self.tasks[spec.key] = spec
        return spec

    def add_subgraph(self, spec: SubgraphSpec) -> SubgraphSpec:
        self._check_key(spec.key, "subgraph")
        self.subgraphs[spec.key] = spec
        return spec

    def _check_key(self, key: str, what: str) -> None:
        if not key:
            msg = f"graph '{self.name}': a {what} key cannot be empty"
            raise GraphError(msg)
        refused = too_long(f"a {what} key", key)
        if refused is not None:
            raise GraphError(f"graph '{self.name}': {refused}")
        if key in self.tasks or key in self.subgraphs:
            msg = f"graph '{self.name}': duplicate {what} key '{key}'"
            raise GraphError(msg)

    def depend(self, task: str, on: list[str]) -> list[tuple[str, str]]:
        """Record that node `task` runs after each of `on`; returns the edges that are new."""
        for key in (task, *on):
            if key not in self.tasks and key not in self.subgraphs:
                msg = f"graph '{self.name}': unknown task key '{key}'"
                raise GraphError(msg)
        if task in on:
            msg = f"graph '{self.name}': task '{task}' cannot depend on itself"
            raise GraphError(msg)
        existing = self.dependencies.setdefault(task, [])
        seen = self._seen.setdefault(task, set(existing))
        added = []
        for dependency in on:
            if dependency not in seen:
                seen.add(dependency)
                existing.append(dependency)
                added.append((task, dependency))
        return added

    def edges(self) -> list[tuple[str, str]]:
        return [(task, dep) for task, deps in self.dependencies.items() for dep in deps]

    def check_acyclic(self) -> None:
        """Refuse a cycle, naming the nodes on it: O(nodes + edges). Edges join siblings,
        so a graph whose every level is acyclic is acyclic once subgraphs are expanded."""
        indegree = {key: 0 for key in self.tasks}
        indegree.update((key, 0) for key in self.subgraphs)
        dependents: dict[str, list[str]] = {key: [] for key in indegree}
        for task, deps in self.dependencies.items():
            indegree[task] += len(deps)
            for dep in deps:
                dependents[dep].append(task)
        ready = deque(key for key, degree in indegree.items() if degree == 0)
        done = 0
        while ready:
            key = ready.popleft()
            done += 1
            for dependent in dependents[key]:
                indegree[dependent] -= 1
                if indegree[dependent] == 0:
                    ready.append(dependent)
        if done == len(indegree):
            return
        cycle = _find_cycle({k for k, d in indegree.items() if d > 0}, self.dependencies)
        msg = f"graph '{self.name}': dependency cycle: {' -> '.join(cycle)}"
        raise GraphError(msg)


def _find_cycle(candidates: set[str], dependencies: dict[str, list[str]]) -> list[str]:
    """Walk dependencies among the tasks left by Kahn's algorithm until one repeats."""
    start = min(candidates)
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(dep for dep in dependencies.get(node, []) if dep in candidates)
    return [*path[position[node] :], node]


def expand(
    tasks: dict[str, str | None],
    subgraphs: dict[str, str | None],
    node_edges: list[tuple[str, str]],
    task_edges: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    """The task edges that the edges with a subgraph on a side stand for.

    `tasks` and `subgraphs` map each key to the subgraph it is in (None: the graph).
    "A depends on subgraph B" holds every task of A until all of B succeeded: each source
    of A (a task with no dependency inside A) depends on each sink of B (a task with no
    dependent inside B); every other task of A waits for a source, and every task of B is
    waited for by a sink, so nothing more is needed. Inner levels are expanded first.
    """
    members: dict[str, list[str]] = {key: [] for key in subgraphs}
    for key, inner in tasks.items():
        container = inner
        while container is not None:
            members[container].append(key)
            container = subgraphs[container]
    depth: dict[str | None, int] = {None: 0}

    def level(key: str | None) -> int:
        if key not in depth:
            depth[key] = level(subgraphs[key]) + 1  # type: ignore[index]
        return depth[key]

    deps: dict[str, set[str]] = {}
    dependents: dict[str, set[str]] = {}
    for task, dep in task_edges:
        deps.setdefault(task, set()).add(dep)
        dependents.setdefault(dep, set()).add(task)
    by_level: dict[int, list[tuple[str, str]]] = {}
    for node, dep in node_edges:
        parent = tasks[node] if node in tasks else subgraphs[node]
        by_level.setdefault(level(parent), []).append((node, dep))
    ends: dict[str, tuple[list[str], list[str]]] = {}

    def ends_of(key: str) -> tuple[list[str], list[str]]:
        found = ends.get(key)
        if found is None:
            inside = set(members[key])
            sources = [t for t in members[key] if not (deps.get(t, set()) & inside)]
            sinks = [t for t in members[key] if not (dependents.get(t, set()) & inside)]
            found = ends[key] = (sources, sinks)
        return found

    added: list[tuple[str, str]] = []
    for _, edges in sorted(by_level.items(), reverse=True):
        for node, dep in edges:
            heads = [node] if node in tasks else ends_of(node)[0]
            tails = [dep] if dep in tasks else ends_of(dep)[1]
            for head in heads:
                for tail in tails:
                    if tail not in deps.setdefault(head, set()):
                        deps[head].add(tail)
                        dependents.setdefault(tail, set()).add(head)
                        added.append((head, tail))
    return added
