"""The built-in operations of the lifecycle workflows."""

from __future__ import annotations

from typing import Any

from dalsegno.model.definitions import operation

NOOP = "dalsegno.lifecycle.operations:noop"
ECHO = "dalsegno.lifecycle.operations:echo"


@operation(resumable=True)
def noop(ctx: Any) -> None:
    """A lifecycle step its template leaves out: its success sets the instance's state."""


@operation(resumable=True)
def echo(ctx: Any, value: Any) -> Any:
    """Returns `value`: a plan stored once as a task's result, read back on every resume."""
    return value
