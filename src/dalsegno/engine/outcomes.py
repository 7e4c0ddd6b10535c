"""How a graph or an execution stops short: these unwind the workflow function."""

from __future__ import annotations


class GraphFailed(Exception):
    """Some tasks of a graph failed; the message names every one (key, operation, error).

    A workflow may catch it (to run a clean-up graph, say); if it does not, the
    execution fails with this message.
    """


class ExecutionCancelled(BaseException):
    """A cancel was carried out: unwinds the workflow, which must not swallow it."""


class ExecutionAbandoned(BaseException):
    """This process stops running the execution and writes nothing more.

    Raised when the lease was lost to another owner, or by `dalsegno.testing` to stand
    in for a crash.
    """
