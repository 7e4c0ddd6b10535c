"""One attempt of a manager-side operation, and what it hands back: the `Completion` the
scheduler applies, for an operation run in a thread, in a child process or on an agent.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dalsegno.engine.context import OperationContext
from dalsegno.engine.instances import InstanceView, changes
from dalsegno.model.errors import NonRecoverableError, RecoverableError
from dalsegno.model.limits import MAX_RESULT, clip, too_large
from dalsegno.model.records import InstanceChange, TaskChange, TaskRecord
from dalsegno.model.states import TaskState


@dataclass(slots=True)
class Completion:
    """What a worker hands back when an operation returns or raises."""

    task_id: int
    attempt: int
    succeeded: bool
    result_json: str | None = None
    error: str | None = None
    detail: str | None = None
    recoverable: bool = True
    retry_after: float | None = None
    # a lifecycle task's success: the instance changes committed with it
    instances: list[InstanceChange] | None = None


def with_changes(
    completion: Completion, view: dict[str, Any], views: dict[str, InstanceView]
) -> Completion:
    """A lifecycle operation's outcome with what it changed of its instances (committed
    with its success); runtime properties that are no JSON object fail the attempt."""
    if not completion.succeeded:
        return completion
    try:
        completion.instances = changes(view, views)
    except (TypeError, ValueError, RecursionError) as exc:
        error = clip(f"runtime properties are not JSON: {exc}")
        return Completion(completion.task_id, completion.attempt, False, None, error, None, False)
    return completion


def describe(exc: BaseException) -> str:
    """One line for an error: its type and message (cut at `MAX_TEXT` characters)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def run_operation(
    func: Callable[..., Any], ctx: OperationContext, kwargs: dict[str, Any], task_id: int
) -> Completion:
    """Run one attempt in the calling (worker) thread; never raises.

    Whatever the operation does ends as an outcome (docs/design.md, "Misbehaving
    operations"): `SystemExit` and `KeyboardInterrupt` are failures like any other
    exception, and so is a result that cannot be encoded or exceeds `MAX_RESULT`.
    """
    attempt = ctx.attempt
    try:
        result = func(ctx, **kwargs)
    except NonRecoverableError as exc:
        return Completion(task_id, attempt, False, None, describe(exc), _trace(), False)
    except RecoverableError as exc:
        return Completion(
            task_id, attempt, False, None, describe(exc), _trace(), True, exc.retry_after
        )
    except BaseException as exc:  # noqa: BLE001 - any other exception counts as recoverable
        return Completion(task_id, attempt, False, None, describe(exc), _trace(), True)
    try:
        encoded = json.dumps(result, allow_nan=False)
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, RecursionError...
        error = clip(f"result is not JSON: {exc}")
        return Completion(task_id, attempt, False, None, error, None, False)
    refused = too_large("the result", encoded, MAX_RESULT)
    if refused is not None:
        return Completion(task_id, attempt, False, None, refused, None, False)
    return Completion(task_id, attempt, True, encoded)


def _trace() -> str:
    return clip(traceback.format_exc().rstrip())


def change_of(task: TaskRecord, expected: TaskState, resume: bool | None = None) -> TaskChange:
    """The guarded update writing `task` as the engine holds it; `resume`: an agent
    task's `ctx.resume` when it is sent (None keeps what is stored)."""
    return TaskChange(
        task_id=task.id,
        expected=expected,
        status=task.status,
        retries=task.retries,
        attempts=task.attempts,
        error=task.error,
        result_json=task.result_json,
        next_run_at=task.next_run_at,
        started_at=task.started_at,
        ended_at=task.ended_at,
        resume=resume,
    )
