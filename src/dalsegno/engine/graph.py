"""`ctx.graph(name)`: build a task graph, store it once, and run it.

On resume the stored graph is authoritative: builder calls that match it return the
stored tasks, and a key or an edge it does not have is an error that names it.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dalsegno.engine.references import bound_operation, normalize, reference_of
from dalsegno.engine.scheduler import GraphRun
from dalsegno.model.blueprints import InstanceBinding, InstanceState
from dalsegno.model.definitions import (
    OperationDefinition,
    check_task_options,
    operation_definition,
)
from dalsegno.model.errors import BadReferenceError, GraphError
from dalsegno.model.graph import GraphSpec, SubgraphSpec, TaskSpec
from dalsegno.model.limits import MAX_KWARGS, too_large
from dalsegno.model.records import NewTask, StoredGraph, SubgraphRecord

if TYPE_CHECKING:
    from dalsegno.engine.runner import ExecutionRun

TASK_OPTIONS = ("key", "agent", "retries", "retry_interval", "timeout", "kwargs", "options")
# the keys of `options={...}`: task options added after the first release (docs/interface.md)
EXTRA_OPTIONS = ("on_failure", "instance")
FAILURE_POLICIES = ("fail", "ignore")
INSTANCE_STATES = frozenset(state.value for state in InstanceState)


class _Unset:
    def __repr__(self) -> str:
        return "None"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class _Signature:
    names: frozenset[str]
    required: frozenset[str]
    open_ended: bool


_signatures: dict[Callable[..., Any], _Signature] = {}


def _signature(func: Callable[..., Any]) -> _Signature:
    found = _signatures.get(func)
    if found is None:
        params = list(inspect.signature(func).parameters.values())[1:]  # after ctx
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        found = _Signature(
            names=frozenset(p.name for p in params if p.kind in kinds),
            required=frozenset(
                p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty
            ),
            open_ended=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
        )
        _signatures[func] = found
    return found


class Task:
    """A task of a graph, as `g.add` returns it."""

    __slots__ = ("_graph", "key", "operation", "parent")

    def __init__(self, graph: Graph, key: str, operation: str, parent: str | None = None) -> None:
        self._graph = graph
        self.key = key
        self.operation = operation
        self.parent = parent  # the key of the subgraph it is in; None: the graph

    @property
    def graph(self) -> str:
        return self._graph.name

    @property
    def status(self) -> str | None:
        """The task's state once the graph was stored, else None."""
        return self._graph.status_of(self.key)

    @property
    def result(self) -> Any:
        """The operation's JSON result once the task succeeded, else None."""
        return self._graph.result_of(self.key)

    def __repr__(self) -> str:
        return f"<Task {self._graph.name}/{self.key}>"


class Subgraph:
    """A group of tasks inside a graph that fails or retries as a unit, as `g.subgraph`
    returns it: in its parent it is one node (`g.depend(x, on=sub)` waits for all of it,
    `g.depend(sub, on=y)` holds all of it). It has the graph's `add`, `depend`,
    `sequence` and `subgraph`; keys are unique across the whole graph."""

    __slots__ = ("_graph", "key", "parent")

    def __init__(self, graph: Graph, key: str, parent: str | None) -> None:
        self._graph = graph
        self.key = key
        self.parent = parent

    @property
    def graph(self) -> str:
        return self._graph.name

    def add(
        self,
        op: Callable[..., Any] | str,
        /,
        *,
        key: str | None = UNSET,
        agent: str | None = UNSET,
        retries: int | None = UNSET,
        retry_interval: float | None = UNSET,
        timeout: float | None = UNSET,
        kwargs: dict[str, Any] | None = UNSET,
        options: dict[str, Any] | None = UNSET,
        **op_kwargs: Any,
    ) -> Task:
        """Add a task to this subgraph, as `Graph.add` does."""
        given = (key, agent, retries, retry_interval, timeout, kwargs, options)
        return self._graph._add(self.key, op, given, op_kwargs)

    def subgraph(
        self,
        key: str,
        *,
        retries: int = 0,
        retry_interval: float = 0.0,
        on_failure: str = "fail",
    ) -> Subgraph:
        """A subgraph nested in this one."""
        return self._graph._subgraph(self.key, key, retries, retry_interval, on_failure)

    def depend(self, node: Node, on: Node | Iterable[Node]) -> None:
        """`node` (a task or subgraph of this subgraph) starts after all of `on`."""
        self._graph._depend(self.key, node, on)

    def sequence(self, *nodes: Node) -> None:
        """Chain tasks and subgraphs of this subgraph in the order given."""
        for before, after in itertools.pairwise(nodes):
            self.depend(after, on=before)

    def __repr__(self) -> str:
        return f"<Subgraph {self._graph.name}/{self.key}>"


Node = Task | Subgraph


class Graph:
    """A named task graph of an execution."""

    def __init__(self, run: ExecutionRun, name: str, stored: StoredGraph | None) -> None:
        self._run = run
        self.name = name
        self._spec = GraphSpec(name)
        self._stored = stored
        self._scheduler: GraphRun | None = None
        self._handles: dict[str, Task] = {}
        self._stored_edges: set[tuple[str, str]] | None = None
        self._subgraphs: dict[str, Subgraph] = {}
        if stored is not None:
            self._stored_keys = {task.key: task for task in stored.tasks}
            self._stored_subgraphs = {sub.key: sub for sub in stored.subgraphs}

    @property
    def restored(self) -> bool:
        """True when this graph came back from the store (a resume)."""
        return self._stored is not None

    def add(
        self,
        op: Callable[..., Any] | str,
        /,
        *,
        key: str | None = UNSET,
        agent: str | None = UNSET,
        retries: int | None = UNSET,
        retry_interval: float | None = UNSET,
        timeout: float | None = UNSET,
        kwargs: dict[str, Any] | None = UNSET,
        options: dict[str, Any] | None = UNSET,
        **op_kwargs: Any,
    ) -> Task:
        """Add a task that runs `op`; every keyword but the task options goes to `op`."""
        given = (key, agent, retries, retry_interval, timeout, kwargs, options)
        return self._add(None, op, given, op_kwargs)

    def subgraph(
        self,
        key: str,
        *,
        retries: int = 0,
        retry_interval: float = 0.0,
        on_failure: str = "fail",
    ) -> Subgraph:
        """A group of tasks that fails or retries as a unit (docs/interface.md)."""
        return self._subgraph(None, key, retries, retry_interval, on_failure)

    def _subgraph(
        self, parent: str | None, key: str, retries: int, interval: float, on_failure: str
    ) -> Subgraph:
        if not isinstance(key, str) or not key:
            msg = f"graph '{self.name}': a subgraph key must be a non-empty string, not {key!r}"
            raise GraphError(msg)
        if self._stored is not None:
            stored = self._stored_subgraphs.get(key)
            if stored is None or stored.parent != parent:
                msg = f"Cannot resume - subgraph '{key}' is not in the stored graph '{self.name}'"
                raise GraphError(msg)
            found = self._subgraphs.get(key)
            if found is None:
                found = self._subgraphs[key] = Subgraph(self, key, parent)
            return found
        try:
            check_task_options(retries, interval, None)
        except ValueError as exc:
            msg = f"g.subgraph({key!r}): {exc}"
            raise GraphError(msg) from None
        if on_failure not in FAILURE_POLICIES:
            msg = f"g.subgraph({key!r}): on_failure must be 'fail' or 'ignore', not {on_failure!r}"
            raise GraphError(msg)
        if self._scheduler is not None:
            msg = f"graph '{self.name}' was already executed: build a new graph for more tasks"
            raise GraphError(msg)
        self._spec.add_subgraph(
            SubgraphSpec(key, parent, int(retries), float(interval), on_failure)
        )
        handle = self._subgraphs[key] = Subgraph(self, key, parent)
        return handle

    def _add(
        self,
        within: str | None,
        op: Callable[..., Any] | str,
        values: tuple[Any, ...],
        op_kwargs: dict[str, Any],
    ) -> Task:
        key = values[0]
        if self._stored is not None:  # the stored graph is authoritative: find the task by key
            if key is not UNSET and key:
                return self._restored_task(key, within)
            return self._restored_task(self._spec.auto_key(self._operation_name(op)), within)
        given: dict[str, Any] = {
            name: value
            for name, value in zip(TASK_OPTIONS, values, strict=True)
            if value is not UNSET
        }
        options = given.get("options")
        func, reference, definition = self._operation(
            op, bound=isinstance(options, dict) and "instance" in options
        )
        signature = _signature(func)
        ambiguous = sorted(name for name in given if name in signature.names)
        if ambiguous:
            msg = (
                f"g.add({definition.name}): {', '.join(ambiguous)} is both a task option and a "
                f"parameter of the operation; pass operation arguments as kwargs={{...}}"
            )
            raise GraphError(msg)
        passed = given.get("kwargs")
        if passed is not None and not isinstance(passed, dict):
            msg = f"g.add({definition.name}): kwargs must be a dict, not {type(passed).__name__}"
            raise GraphError(msg)
        arguments = dict(passed or {})
        clash = sorted(set(arguments) & set(op_kwargs))
        if clash:
            msg = f"g.add({definition.name}): {', '.join(clash)} given twice"
            raise GraphError(msg)
        arguments.update(op_kwargs)
        self._check_arguments(definition.name, signature, arguments)
        extra = _extra_options(definition.name, given.get("options"))
        try:
            check_task_options(
                given.get("retries"), given.get("retry_interval"), given.get("timeout")
            )
        except ValueError as exc:
            msg = f"g.add({definition.name}): {exc}"
            raise GraphError(msg) from None
        task_key = given.get("key") or self._spec.auto_key(definition.name)
        if not isinstance(task_key, str):
            msg = f"g.add({definition.name}): key must be a string, not {task_key!r}"
            raise GraphError(msg)
        if given.get("agent") is not None and not isinstance(given["agent"], str):
            msg = f"g.add({definition.name}): agent must be a queue name, not {given['agent']!r}"
            raise GraphError(msg)
        if self._scheduler is not None:
            msg = f"graph '{self.name}' was already executed: build a new graph for more tasks"
            raise GraphError(msg)
        self._spec.add(
            TaskSpec(
                key=str(task_key),
                operation=reference,
                agent=given.get("agent"),
                kwargs=arguments,
                retries=given.get("retries"),
                retry_interval=given.get("retry_interval"),
                timeout=given.get("timeout"),
                subgraph=within,
                on_failure=extra.get("on_failure"),
                instance=extra.get("instance"),
            )
        )
        handle = Task(self, str(task_key), reference, within)
        self._handles[handle.key] = handle
        return handle

    def depend(self, task: Node, on: Node | Iterable[Node]) -> None:
        """`task` (a task or a subgraph) starts only after each node of `on` succeeded."""
        self._depend(None, task, on)

    def _depend(self, level: str | None, task: Node, on: Node | Iterable[Node]) -> None:
        dependencies = [on] if isinstance(on, Task | Subgraph) else list(on)
        for handle in (task, *dependencies):
            self._own(handle, level)
        if self._stored is not None:
            if self._stored_edges is None:
                by_id = {record.id: record.key for record in self._stored.tasks}
                self._stored_edges = {(by_id[a], by_id[b]) for a, b in self._stored.edges}
                self._stored_edges.update(self._stored.node_edges)
            for dependency in dependencies:
                if (task.key, dependency.key) not in self._stored_edges:
                    msg = (
                        f"Cannot resume - dependency '{task.key}' -> '{dependency.key}' is not in "
                        f"the stored graph '{self.name}'"
                    )
                    raise GraphError(msg)
            return
        if self._scheduler is not None:
            msg = f"graph '{self.name}' was already executed: its dependencies are fixed"
            raise GraphError(msg)
        self._spec.depend(task.key, [dependency.key for dependency in dependencies])

    def sequence(self, *tasks: Node) -> None:
        """Chain tasks (and subgraphs) in the order given."""
        for before, after in itertools.pairwise(tasks):
            self.depend(after, on=before)

    def execute(self) -> dict[str, Any]:
        """Store the graph (the first time) and run it to its end.

        Returns the results by task key; raises `GraphFailed` naming every failed task.
        """
        if self._scheduler is None:
            stored = self._stored or self._store()
            self._scheduler = GraphRun(self._run, stored)
        self._scheduler.execute()
        scheduler = self._scheduler
        return {
            task.key: scheduler.result_of(task.id)
            for task in scheduler.tasks.values()
            if task.status == "succeeded"
        }

    # helpers -----------------------------------------------------------------------

    def status_of(self, key: str) -> str | None:
        record = self._record(key)
        return None if record is None else record.status.value

    def result_of(self, key: str) -> Any:
        record = self._record(key)
        if record is None or self._scheduler is None:
            return record.result if record is not None else None
        return self._scheduler.result_of(record.id)

    def _record(self, key: str) -> Any:
        if self._scheduler is not None:
            return self._scheduler.by_key.get(key)
        if self._stored is not None:
            return self._stored_keys.get(key)
        return None

    def _operation_name(self, op: Callable[..., Any] | str) -> str:
        marked = None if isinstance(op, str) else operation_definition(op)
        return marked.name if marked is not None else self._operation(op)[2].name

    def _operation(
        self, op: Callable[..., Any] | str, bound: bool = False
    ) -> tuple[Callable[..., Any], str, OperationDefinition]:
        """`bound`: a lifecycle task's, whose reference a blueprint gave: a manager's
        allow-list refuses one it does not serve, before importing it."""
        if isinstance(op, str):
            reference = normalize(op)
            func, definition = bound_operation(self._run.config.workflows, reference, bound)
            return func, reference, definition
        marked = operation_definition(op)
        if marked is None:
            name = getattr(op, "__qualname__", repr(op))
            msg = f"{name} is not an operation: decorate it with @operation"
            raise BadReferenceError(msg)
        return op, reference_of(op), marked

    def _check_arguments(self, name: str, signature: _Signature, arguments: dict[str, Any]) -> None:
        missing = signature.required - arguments.keys()
        if missing:
            msg = f"g.add({name}): missing argument(s) {', '.join(sorted(missing))}"
            raise GraphError(msg)
        if not signature.open_ended:
            unknown = arguments.keys() - signature.names
            if unknown:
                msg = f"g.add({name}): unexpected argument(s) {', '.join(sorted(unknown))}"
                raise GraphError(msg)

    def _restored_task(self, key: str, within: str | None) -> Task:
        handle = self._handles.get(key)
        if handle is not None and handle.parent == within:
            return handle
        record = self._stored_keys.get(key)
        if record is None or record.subgraph != within:
            where = self.name if within is None else f"{self.name}/{within}"
            msg = f"Cannot resume - task '{key}' is not in the stored graph '{where}'"
            raise GraphError(msg)
        handle = self._handles[key] = Task(self, key, record.operation, within)
        return handle

    def _own(self, handle: Node, level: str | None = None) -> None:
        if not isinstance(handle, Task | Subgraph) or handle._graph is not self:
            msg = f"graph '{self.name}': {handle!r} is not a task of this graph"
            raise GraphError(msg)
        if handle.parent != level:
            where = "the graph" if level is None else f"subgraph '{level}'"
            msg = (
                f"graph '{self.name}': {handle!r} is not a node of {where}: edges join "
                "tasks and subgraphs of the same level"
            )
            raise GraphError(msg)

    def _store(self) -> StoredGraph:
        spec = self._spec
        spec.check_acyclic()
        config, run = self._run.config, self._run
        definitions: dict[tuple[str, bool], OperationDefinition] = {}
        new_tasks = []
        for task in spec.tasks.values():
            which = (task.operation, task.instance is not None)
            definition = definitions.get(which)
            if definition is None:
                definition = bound_operation(config.workflows, *which)[1]
                definitions[which] = definition
            new_tasks.append(
                NewTask(
                    key=task.key,
                    operation=task.operation,
                    agent=task.agent,
                    kwargs=task.kwargs,
                    kwargs_json=self._encode(task),
                    # the task's own, its operation's, the execution's (given at its start,
                    # else its workflow's), the built-in default (docs/design.md, "Retry settings")
                    max_retries=_first(
                        task.retries, definition.retries, run.task_retries, config.default_retries
                    ),
                    retry_interval=float(
                        _first(
                            task.retry_interval,
                            definition.retry_interval,
                            run.task_retry_interval,
                            config.default_retry_interval,
                        )
                    ),
                    timeout=task.timeout if task.timeout is not None else definition.timeout,
                    subgraph=task.subgraph,
                    on_failure=task.on_failure,
                    instance=task.instance,
                )
            )
        edges = spec.edges()
        subgraphs = [
            SubgraphRecord(sub.key, sub.parent, sub.retries, sub.retry_interval, sub.on_failure)
            for sub in spec.subgraphs.values()
        ]
        node_edges: list[tuple[str, str]] = []
        if subgraphs:
            self._check_not_empty(spec)
            node_edges = [e for e in edges if e[0] in spec.subgraphs or e[1] in spec.subgraphs]
            edges = [e for e in edges if e[0] in spec.tasks and e[1] in spec.tasks]
        self._spec = GraphSpec(self.name)  # the builder's copy is no longer needed
        return self._run.store_graph(self.name, new_tasks, edges, subgraphs, node_edges)

    def _check_not_empty(self, spec: GraphSpec) -> None:
        filled = {task.subgraph for task in spec.tasks.values()}
        for sub in spec.subgraphs.values():
            if sub.parent is not None:
                filled.add(sub.parent)
        empty = sorted(key for key in spec.subgraphs if key not in filled)
        if empty:
            msg = f"graph '{self.name}': subgraph '{empty[0]}' has no tasks"
            raise GraphError(msg)

    def _encode(self, task: TaskSpec) -> str:
        if not task.kwargs:
            return "{}"
        try:
            encoded = json.dumps(task.kwargs, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            msg = f"graph '{self.name}': arguments of task '{task.key}' are not JSON: {exc}"
            raise GraphError(msg) from None
        refused = too_large(f"the arguments of task '{task.key}'", encoded, MAX_KWARGS)
        if refused is not None:
            raise GraphError(f"graph '{self.name}': {refused}")
        return encoded


def _extra_options(name: str, options: Any) -> dict[str, Any]:
    """The task options of `options={...}`, checked."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        msg = f"g.add({name}): options must be a dict, not {type(options).__name__}"
        raise GraphError(msg)
    unknown = sorted(str(k) for k in options if k not in EXTRA_OPTIONS)
    if unknown:
        msg = f"g.add({name}): unknown task option(s) {', '.join(unknown)}"
        raise GraphError(msg)
    policy = options.get("on_failure")
    if policy is not None and policy not in FAILURE_POLICIES:
        msg = f"g.add({name}): on_failure must be 'fail' or 'ignore', not {policy!r}"
        raise GraphError(msg)
    return {
        "on_failure": None if policy == "fail" else policy,
        "instance": _binding(name, options.get("instance")),
    }


def _binding(name: str, given: Any) -> str | None:
    """`options={"instance": {...}}`: the node instance a lifecycle task acts on
    (`InstanceBinding`), checked, as the JSON stored with the task."""
    if given is None:
        return None
    try:
        if not isinstance(given, dict) or not isinstance(given.get("instance"), str):
            raise TypeError
        binding = InstanceBinding.from_json(given)
        for state in (binding.starting, binding.success):
            if state is not None and state not in INSTANCE_STATES:
                raise TypeError
        for other in (binding.source, binding.target):
            if other is not None and not isinstance(other, str):
                raise TypeError
    except (KeyError, TypeError):
        msg = (
            f"g.add({name}): instance must be {{'instance': ID, 'source': ID, 'target': ID, "
            f"'starting': STATE, 'success': STATE}} (all but instance optional), not {given!r}"
        )
        raise GraphError(msg) from None
    return json.dumps(binding.to_json())


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)
