"""The `@operation` and `@workflow` decorators: they mark a function, and change nothing else.

A decorated function stays a plain function, so it can be called directly in a unit test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

OPERATION_ATTRIBUTE = "__dalsegno_operation__"
WORKFLOW_ATTRIBUTE = "__dalsegno_workflow__"


@dataclass(frozen=True, slots=True)
class OperationDefinition:
    """What `@operation` says of a function."""

    name: str
    resumable: bool
    retries: int | None
    retry_interval: float | None
    timeout: float | None
    process: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """What `@workflow` says of a function."""

    name: str
    resumable: bool
    # the execution-wide retry settings of its executions that set none (docs/design.md)
    task_retries: int | None = None
    task_retry_interval: float | None = None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_task_options(
    retries: int | None, retry_interval: float | None, timeout: float | None
) -> None:
    if retries is not None and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < -1
    ):
        msg = f"retries must be a whole number >= 0, or -1 to retry forever, not {retries!r}"
        raise ValueError(msg)
    if retry_interval is not None and (
        not _is_number(retry_interval) or not math.isfinite(retry_interval) or retry_interval < 0
    ):
        msg = f"retry_interval must be a number of seconds >= 0, not {retry_interval!r}"
        raise ValueError(msg)
    if timeout is not None and (
        not _is_number(timeout) or not math.isfinite(timeout) or timeout <= 0
    ):
        msg = f"timeout must be a number of seconds > 0, not {timeout!r}"
        raise ValueError(msg)


def check_execution_retries(retries: object, retry_interval: object) -> None:
    """The execution-wide retry settings: retries a whole number >= -1 (-1: retry forever),
    the interval a number of seconds >= 0. Raises `ValueError` with a one-line reason."""
    if retries is not None and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < -1
    ):
        msg = f"task retries must be a whole number >= -1 (-1: forever), not {retries!r}"
        raise ValueError(msg)
    if retry_interval is not None and (
        not isinstance(retry_interval, int | float)
        or isinstance(retry_interval, bool)
        or not math.isfinite(retry_interval)
        or retry_interval < 0
    ):
        msg = f"the task retry interval must be a number of seconds >= 0, not {retry_interval!r}"
        raise ValueError(msg)


@overload
def operation(func: F, /) -> F: ...


@overload
def operation(
    *,
    resumable: bool = False,
    retries: int | None = None,
    retry_interval: float | None = None,
    timeout: float | None = None,
    process: bool = False,
) -> Callable[[F], F]: ...


def operation(
    func: F | None = None,
    /,
    *,
    resumable: bool = False,
    retries: int | None = None,
    retry_interval: float | None = None,
    timeout: float | None = None,
    process: bool = False,
) -> F | Callable[[F], F]:
    """Declare `func(ctx, **kwargs) -> JSON` an operation that tasks can run.

    `resumable=True` says that running it again after an interruption is safe.
    `retries`, `retry_interval` and `timeout` are defaults for the tasks that run it.
    `process=True` runs it in a child process, so that a kill-cancel or a timeout stops it
    (an operation in a thread can only be abandoned).
    """
    check_task_options(retries, retry_interval, timeout)

    def mark(target: F) -> F:
        definition = OperationDefinition(
            name=target.__name__,
            resumable=bool(resumable),
            retries=retries,
            retry_interval=None if retry_interval is None else float(retry_interval),
            timeout=None if timeout is None else float(timeout),
            process=bool(process),
        )
        setattr(target, OPERATION_ATTRIBUTE, definition)
        return target

    return mark if func is None else mark(func)


@overload
def workflow(func: F, /) -> F: ...


@overload
def workflow(
    *,
    resumable: bool = False,
    task_retries: int | None = None,
    task_retry_interval: float | None = None,
) -> Callable[[F], F]: ...


def workflow(
    func: F | None = None,
    /,
    *,
    resumable: bool = False,
    task_retries: int | None = None,
    task_retry_interval: float | None = None,
) -> F | Callable[[F], F]:
    """Declare `func(ctx, **params)` a workflow; `resumable=True` lets it be resumed.

    `task_retries` and `task_retry_interval` are the retry settings of its executions'
    tasks that set none, when the execution is started without its own (docs/design.md).
    """
    check_execution_retries(task_retries, task_retry_interval)

    def mark(target: F) -> F:
        definition = WorkflowDefinition(
            target.__name__,
            bool(resumable),
            task_retries,
            None if task_retry_interval is None else float(task_retry_interval),
        )
        setattr(target, WORKFLOW_ATTRIBUTE, definition)
        return target

    return mark if func is None else mark(func)


def operation_definition(func: object) -> OperationDefinition | None:
    """The `@operation` marks of `func`, or None."""
    found = getattr(func, OPERATION_ATTRIBUTE, None)
    return found if isinstance(found, OperationDefinition) else None


def workflow_definition(func: object) -> WorkflowDefinition | None:
    """The `@workflow` marks of `func`, or None."""
    found = getattr(func, WORKFLOW_ATTRIBUTE, None)
    return found if isinstance(found, WorkflowDefinition) else None
