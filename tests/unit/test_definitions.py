"""@operation and @workflow mark a function with its options, and change nothing else."""

from __future__ import annotations

import math
from typing import Any

import pytest

import dalsegno
from dalsegno.model.definitions import (
    OperationDefinition,
    WorkflowDefinition,
    operation,
    operation_definition,
    workflow,
    workflow_definition,
)


def test_public_names_are_the_model_decorators() -> None:
    assert dalsegno.operation is operation
    assert dalsegno.workflow is workflow


# --- @operation -------------------------------------------------------------------------


def test_operation_without_parentheses_takes_the_defaults() -> None:
    @operation
    def provision(ctx: Any, name: str) -> dict[str, str]:
        return {"name": name}

    assert operation_definition(provision) == OperationDefinition(
        name="provision", resumable=False, retries=None, retry_interval=None, timeout=None
    )


def test_operation_with_empty_parentheses_takes_the_defaults() -> None:
    @operation()
    def provision(ctx: Any) -> None:
        return None

    assert operation_definition(provision) == OperationDefinition(
        name="provision", resumable=False, retries=None, retry_interval=None, timeout=None
    )


def test_operation_options_are_recorded() -> None:
    @operation(resumable=True, retries=3, retry_interval=2, timeout=30)
    def install(ctx: Any) -> None:
        return None

    definition = operation_definition(install)
    assert definition == OperationDefinition(
        name="install", resumable=True, retries=3, retry_interval=2.0, timeout=30.0
    )
    assert definition is not None
    assert isinstance(definition.retry_interval, float)
    assert isinstance(definition.timeout, float)


def test_zero_retries_and_zero_retry_interval_are_allowed() -> None:
    @operation(retries=0, retry_interval=0)
    def probe(ctx: Any) -> None:
        return None

    definition = operation_definition(probe)
    assert definition is not None
    assert (definition.retries, definition.retry_interval) == (0, 0.0)


def test_an_operation_stays_the_same_plain_callable_function() -> None:
    def provision(ctx: Any, name: str, size: int = 1) -> dict[str, Any]:
        """Create a VM."""
        return {"name": name, "size": size, "ctx": ctx}

    decorated = operation(resumable=True)(provision)
    assert decorated is provision
    assert decorated("a context", name="vm1") == {"name": "vm1", "size": 1, "ctx": "a context"}
    assert decorated.__name__ == "provision"
    assert decorated.__doc__ == "Create a VM."


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -2}, "retries must be a whole number >= 0, or -1 to retry forever, not -2"),
        ({"retries": 1.5}, "retries must be a whole number >= 0, or -1 to retry forever, not 1.5"),
        ({"retries": "3"}, "retries must be a whole number >= 0, or -1 to retry forever, not '3'"),
        ({"retry_interval": -0.5}, "retry_interval must be a number of seconds >= 0, not -0.5"),
        ({"retry_interval": "5"}, "retry_interval must be a number of seconds >= 0, not '5'"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0, not 0"),
        ({"timeout": -3}, "timeout must be a number of seconds > 0, not -3"),
        ({"timeout": "1m"}, "timeout must be a number of seconds > 0, not '1m'"),
    ],
)
def test_bad_operation_options_are_refused_at_decoration(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        operation(**options)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("retry_interval", math.nan),  # NaN compares false: a "< 0" check alone lets it in
        ("timeout", math.nan),
        ("retry_interval", math.inf),
        ("timeout", math.inf),
        ("retries", True),  # a bool is an int to isinstance, but never a count
        ("timeout", True),
    ],
)
def test_values_that_only_look_like_numbers_are_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{option} must be"):
        operation(**{option: value})


def test_bad_options_are_refused_without_parentheses_too() -> None:
    def provision(ctx: Any) -> None:
        return None

    with pytest.raises(ValueError, match="retries"):
        operation(provision, retries=-2)  # type: ignore[call-overload]
    assert operation_definition(provision) is None


def test_a_plain_function_is_no_operation() -> None:
    def helper(ctx: Any) -> None:
        return None

    assert operation_definition(helper) is None
    assert operation_definition("tasks:provision") is None


# --- @workflow -------------------------------------------------------------------------------


def test_workflow_without_parentheses_is_not_resumable() -> None:
    @workflow
    def deploy(ctx: Any, hosts: int = 2) -> None:
        return None

    assert workflow_definition(deploy) == WorkflowDefinition(name="deploy", resumable=False)


def test_workflow_with_parentheses() -> None:
    @workflow()
    def deploy(ctx: Any) -> None:
        return None

    @workflow(resumable=True)
    def upgrade(ctx: Any) -> None:
        return None

    assert workflow_definition(deploy) == WorkflowDefinition(name="deploy", resumable=False)
    assert workflow_definition(upgrade) == WorkflowDefinition(name="upgrade", resumable=True)


def test_a_workflow_stays_the_same_plain_callable_function() -> None:
    def deploy(ctx: Any, hosts: int = 2) -> int:
        return hosts * 10

    assert workflow(resumable=True)(deploy) is deploy
    assert deploy(None, hosts=3) == 30


def test_workflow_and_operation_marks_are_kept_apart() -> None:
    @workflow
    def deploy(ctx: Any) -> None:
        return None

    @operation
    def provision(ctx: Any) -> None:
        return None

    assert operation_definition(deploy) is None
    assert workflow_definition(provision) is None
