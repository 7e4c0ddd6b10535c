"""What a workflow and an operation see as `ctx`."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dalsegno.model.limits import clip
from dalsegno.model.records import NewEvent

if TYPE_CHECKING:
    from dalsegno.engine.graph import Graph

EventSink = Callable[[NewEvent], None]

_LEVELS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "error"}


class EventLogger:
    """A logger whose lines are stored as events of the execution (and of the task)."""

    __slots__ = ("_graph", "_sink", "_task_key")

    def __init__(self, sink: EventSink, graph: str | None = None, task_key: str | None = None):
        self._sink = sink
        self._graph = graph
        self._task_key = task_key

    def log(self, level: int | str, message: object, *args: object) -> None:
        text = clip(str(message) % args if args else str(message))
        name = level if isinstance(level, str) else _LEVELS.get(level, "info")
        self._sink(
            NewEvent("log", text, self._graph, self._task_key, level=name, created_at=time.time())
        )

    def debug(self, message: object, *args: object) -> None:
        self.log("debug", message, *args)

    def info(self, message: object, *args: object) -> None:
        self.log("info", message, *args)

    def warning(self, message: object, *args: object) -> None:
        self.log("warning", message, *args)

    warn = warning

    def error(self, message: object, *args: object) -> None:
        self.log("error", message, *args)

    def exception(self, message: object, *args: object) -> None:
        text = str(message) % args if args else str(message)
        self.log("error", f"{text}\n{traceback.format_exc().rstrip()}")


class OperationContext:
    """`ctx` inside an operation. A lifecycle task's operation also has `node`,
    `instance`, `deployment` and, for a relationship, `source` and `target`
    (`dalsegno.engine.instances`); other operations have None there."""

    __slots__ = (
        "attempt",
        "deployment",
        "execution_id",
        "graph",
        "idempotency_key",
        "instance",
        "logger",
        "node",
        "resume",
        "retries",
        "source",
        "target",
        "task_key",
    )

    def __init__(
        self,
        execution_id: str,
        graph: str,
        task_key: str,
        retries: int,
        attempt: int,
        resume: bool,
        idempotency_key: str,
        logger: EventLogger,
    ) -> None:
        self.execution_id = execution_id
        self.graph = graph
        self.task_key = task_key
        self.retries = retries
        self.attempt = attempt
        self.resume = resume
        self.idempotency_key = idempotency_key
        self.logger = logger
        self.deployment: Any = None
        self.instance: Any = None
        self.node: Any = None
        self.source: Any = None
        self.target: Any = None

    def __repr__(self) -> str:
        return f"<OperationContext {self.execution_id} {self.graph}/{self.task_key}>"


class WorkflowContext:
    """`ctx` inside a workflow function."""

    def __init__(
        self,
        execution_id: str,
        workflow: str,
        params: dict[str, Any],
        resume: bool,
        logger: EventLogger,
        open_graph: Callable[[str], Graph],
    ) -> None:
        self.execution_id = execution_id
        self.workflow = workflow
        self.params = params
        self.resume = resume
        self.logger = logger
        self._open_graph = open_graph
        # run against a deployment: `dalsegno.engine.instances.WorkflowDeployment`
        self.deployment: Any = None

    def graph(self, name: str = "main") -> Graph:
        """The graph `name`: the stored one when it exists (`graph.restored` is then true)."""
        return self._open_graph(name)

    def __repr__(self) -> str:
        return f"<WorkflowContext {self.execution_id} {self.workflow}>"
