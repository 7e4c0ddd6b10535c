"""One assignment from the manager, and running it on this host as the manager would.

The operation is imported by its reference here, gets the same `ctx` as on the manager,
and its exceptions map to outcomes through the engine's own `run_operation`, so an agent
operation fails, retries and logs exactly like a manager-side one. An operation declared
`process=True` (by its definition on this host) runs in a child process, which a kill or
a timeout really stops; any other runs in a worker thread, which can only be abandoned.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dalsegno.engine.attempts import Completion, run_operation, with_changes
from dalsegno.engine.context import EventLogger, OperationContext
from dalsegno.engine.instances import attach, changes_json
from dalsegno.engine.pool import WorkerPool
from dalsegno.engine.process import ChildOperation
from dalsegno.engine.references import resolve_operation
from dalsegno.model.errors import DalsegnoError
from dalsegno.model.limits import MAX_AGENT_LOGS, MAX_TEXT, clip

# What the manager takes in a result: these levels, texts and lines up to these sizes.
LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "warn": "warning",
          "error": "error", "critical": "error", "fatal": "error"}  # fmt: skip
MAX_LOGS = 10_000


class LogLine(Protocol):
    """What the engine's loggers hand over for each line an operation logs."""

    @property
    def message(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def created_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Assignment:
    """A task the manager gave this agent (the protocol's Assignment document)."""

    attempt_id: str
    execution_id: str
    graph: str
    task_key: str
    operation: str
    kwargs: dict[str, Any]
    retries: int
    resume: bool
    idempotency_key: str
    timeout: float | None
    process: bool
    attempt: int = 0
    # a lifecycle task: what its operation sees (`dalsegno.engine.instances`), or why not
    lifecycle: dict[str, Any] | None = None
    lifecycle_error: str | None = None

    @classmethod
    def parse(cls, document: dict[str, Any]) -> Assignment:
        """Read a claim answer's task; a malformed one is a ValueError naming the field."""
        text = {
            name: document.get(name)
            for name in ("attempt_id", "execution_id", "graph", "task_key", "operation")
        }
        for name, value in text.items():
            if not isinstance(value, str) or not value:
                msg = f"assignment field {name!r} must be a non-empty string, not {value!r:.80}"
                raise ValueError(msg)
        kwargs = document.get("kwargs") or {}
        retries = document.get("retries", 0)
        timeout = document.get("timeout")
        if not isinstance(kwargs, dict):
            msg = f"assignment field 'kwargs' must be an object, not {kwargs!r:.80}"
            raise ValueError(msg)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            msg = f"assignment field 'retries' must be a whole number, not {retries!r:.80}"
            raise ValueError(msg)
        if timeout is not None and (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            msg = f"assignment field 'timeout' must be seconds > 0 or null, not {timeout!r:.80}"
            raise ValueError(msg)
        attempt = document.get("attempt", retries)
        lifecycle = document.get("lifecycle")
        if lifecycle is not None and not isinstance(lifecycle, dict):
            msg = f"assignment field 'lifecycle' must be an object, not {lifecycle!r:.80}"
            raise ValueError(msg)
        error = document.get("lifecycle_error")
        return cls(
            attempt_id=str(text["attempt_id"]),
            execution_id=str(text["execution_id"]),
            graph=str(text["graph"]),
            task_key=str(text["task_key"]),
            operation=str(text["operation"]),
            kwargs=kwargs,
            retries=retries,
            resume=bool(document.get("resume", False)),
            idempotency_key=str(
                document.get("idempotency_key") or f"{text['execution_id']}-{text['task_key']}"
            ),
            timeout=None if timeout is None else float(timeout),
            process=bool(document.get("process", False)),
            attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0,
            lifecycle=lifecycle,
            lifecycle_error=None if error is None else str(error),
        )


class AttemptRun:
    """One attempt running here: started, then waited for, stopped, or given up on."""

    def __init__(
        self,
        assignment: Assignment,
        on_settled: Callable[[AttemptRun], None] | None = None,
    ) -> None:
        self.assignment = assignment
        # called once, from the thread that settled it, when the operation returned or
        # raised (not when it was stopped first): how a waiting supervisor is spared
        self._on_settled = on_settled
        self.logs: list[dict[str, Any]] = []
        self._logged = 0  # characters of the log lines kept (at most `MAX_AGENT_LOGS`)
        self._lock = threading.Lock()
        self._settled = threading.Event()  # an outcome came, or the attempt was stopped
        self._completion: Completion | None = None
        self._child: ChildOperation | None = None
        self._pool: WorkerPool | None = None
        self.stopped: str | None = None  # why the agent stopped it: "kill", "unknown", ...

    def start(self, pool: WorkerPool) -> None:
        """Resolve the operation by its reference on this host and hand it to a worker."""
        task = self.assignment
        self._pool = pool
        if task.lifecycle_error is not None:  # its instance is gone: as on a manager
            self._settle(
                Completion(0, task.attempt, False, None, task.lifecycle_error, None, False)
            )
            return
        try:
            func, definition = resolve_operation(task.operation)
        except DalsegnoError as exc:
            self._settle(Completion(0, task.attempt, False, None, str(exc), None, False))
            return
        context: dict[str, Any] = {
            "execution_id": task.execution_id,
            "graph": task.graph,
            "task_key": task.task_key,
            "retries": task.retries,
            "attempt": task.attempt,
            "resume": task.resume,
            "idempotency_key": task.idempotency_key,
        }
        if task.lifecycle is not None:  # the child sees, and hands back, the same view
            context["lifecycle"] = task.lifecycle
        if definition.process:
            child = ChildOperation(
                task.operation, 0, task.attempt, context, json.dumps(task.kwargs), self._log
            )
            with self._lock:
                if self.stopped is not None:
                    return
                self._child = child
            pool.submit(lambda: self._settle(child.run()))
            return
        ctx = OperationContext(
            execution_id=task.execution_id,
            graph=task.graph,
            task_key=task.task_key,
            retries=task.retries,
            attempt=task.attempt,
            resume=task.resume,
            idempotency_key=task.idempotency_key,
            logger=EventLogger(self._log, task.graph, task.task_key),
        )
        view = task.lifecycle
        if view is None:
            pool.submit(lambda: self._settle(run_operation(func, ctx, task.kwargs, 0)))
            return

        def lifecycle_job() -> None:  # ctx.node, ctx.instance...; the changes come back
            try:
                views = attach(ctx, view)
            except (KeyError, TypeError, ValueError) as exc:
                error = f"the manager sent a bad instance view: {exc!r:.200}"
                self._settle(Completion(0, task.attempt, False, None, error, None, False))
                return
            done = run_operation(func, ctx, task.kwargs, 0)
            self._settle(with_changes(done, view, views))

        pool.submit(lifecycle_job)

    @property
    def finished(self) -> bool:
        """Its operation returned or raised (its result may still be on its way)."""
        with self._lock:
            return self._completion is not None

    def wait(self, timeout: float | None) -> Completion | None:
        """The outcome; None when stopped, or when `timeout` passed first."""
        if not self._settled.wait(timeout):
            return None
        with self._lock:
            return None if self.stopped is not None else self._completion

    def stop(self, why: str) -> None:
        """Stop the operation and report nothing: a child process gets SIGTERM, then
        SIGKILL; a thread cannot be stopped, so it is abandoned (and replaced in the pool)."""
        with self._lock:
            if self.stopped is not None:
                return
            self.stopped = why
            child, pool = self._child, self._pool
            running = self._completion is None
        if child is not None:
            child.stop()
        elif running and pool is not None:
            pool.replace_abandoned()
        self._settled.set()

    def timed_out(self) -> Completion:
        """Stop an operation past its task's timeout: a recoverable failure, as on a manager."""
        timeout = self.assignment.timeout or 0.0
        self.stop("timeout")
        error = f"timed out after {timeout:g}s"
        return Completion(0, self.assignment.attempt, False, None, error, None, True)

    def _settle(self, completion: Completion) -> None:
        with self._lock:
            first = self._completion is None
            if first:
                self._completion = completion
            stopped = self.stopped is not None
        self._settled.set()
        if first and not stopped and self._on_settled is not None:
            self._on_settled(self)

    def completion(self) -> Completion | None:
        """The outcome, once settled and not stopped."""
        with self._lock:
            return None if self.stopped is not None else self._completion

    def _log(self, line: LogLine) -> None:
        message = _clip(str(line.message))
        entry = {
            "level": LEVELS.get(str(line.level).lower(), "info"),
            "message": message,
            "created_at": max(0.0, line.created_at or time.time()),
        }
        size = len(message)
        with self._lock:  # the lines and their size fit the manager's limit on a result
            if len(self.logs) < MAX_LOGS - 1 and self._logged + size <= MAX_AGENT_LOGS:
                self.logs.append(entry)
                self._logged += size
            elif len(self.logs) < MAX_LOGS and self._logged <= MAX_AGENT_LOGS:
                entry["message"] = (
                    f"(more than {MAX_LOGS} lines or {MAX_AGENT_LOGS:,} characters: "
                    "the rest was left out)"
                )
                self.logs.append(entry)
                self._logged = MAX_AGENT_LOGS + 1

    def result_body(self, agent: str, completion: Completion) -> dict[str, Any]:
        """The protocol's result document for this attempt."""
        with self._lock:
            logs = list(self.logs)
        if completion.succeeded:
            body = {
                "agent": agent,
                "outcome": "succeeded",
                "result": json.loads(completion.result_json or "null"),
                "error": None,
                "recoverable": True,
                "retry_after": None,
                "logs": logs,
            }
            if completion.instances is not None:  # kept in the outbox with the result
                body["instances"] = changes_json(completion.instances)
            return body
        if completion.detail:
            logs.append(
                {
                    "level": "error",
                    "message": _clip(f"the failure on agent {agent}:\n{completion.detail}"),
                    "created_at": time.time(),
                }
            )
        return {
            "agent": agent,
            "outcome": "failed",
            "result": None,
            "error": _clip(completion.error or "failed"),
            "recoverable": completion.recoverable,
            "retry_after": completion.retry_after,
            "logs": logs,
        }


def _clip(text: str) -> str:
    return clip(text, MAX_TEXT)
