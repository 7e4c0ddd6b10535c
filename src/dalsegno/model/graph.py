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


@dataclass(slots=True)
class GraphSpec:
    """A named graph: tasks in the order they were added, and `task -> dependencies`."""

    name: str
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    _occurrences: dict[str, int] = field(default_factory=dict)
    _seen: dict[str, set[str]] = field(default_factory=dict)

    def auto_key(self, operation_name: str) -> str:
        """`name` for the first task of an operation, then `name#2`, `name#3`..."""
        seen = self._occurrences.get(operation_name, 0) + 1
        self._occurrences[operation_name] = seen
        return operation_name if seen == 1 else f"{operation_name}#{seen}"

    def add(self, spec: TaskSpec) -> TaskSpec:
        if not spec.key:
            msg = f"graph '{self.name}': a task key cannot be empty"
            raise GraphError(msg)
        refused = too_long("a task key", spec.key)
        if refused is not None:
            raise GraphError(f"graph '{self.name}': {refused}")
        if spec.key in self.tasks:
            msg = f"graph '{self.name}': duplicate task key '{spec.key}'"
            raise GraphError(msg)
        self.tasks[spec.key] = spec
        return spec

    def depend(self, task: str, on: list[str]) -> list[tuple[str, str]]:
        """Record that `task` runs after each of `on`; returns the edges that are new."""
        for key in (task, *on):
            if key not in self.tasks:
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
        """Refuse a cycle, naming the tasks on it: O(tasks + edges)."""
        indegree = {key: 0 for key in self.tasks}
        dependents: dict[str, list[str]] = {key: [] for key in self.tasks}
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
        if done == len(self.tasks):
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
