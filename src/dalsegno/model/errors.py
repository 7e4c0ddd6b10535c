"""Errors an operation raises to steer retries, and errors dalsegno reports."""

from __future__ import annotations


class OperationError(Exception):
    """Base of the errors an operation raises on purpose."""


class NonRecoverableError(OperationError):
    """The operation failed and retrying cannot help: it is never retried."""


class RecoverableError(OperationError):
    """The operation failed but may succeed later: retried while retries are left."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OperationRetry(RecoverableError):
    """The operation asks to be run again later; it uses one of the task's retries."""


class DalsegnoError(Exception):
    """Base of the errors dalsegno itself reports."""


class RefusedError(DalsegnoError):
    """A request that is not allowed or not well formed; nothing was changed."""


class NotFoundError(RefusedError):
    """An unknown execution, task or event id."""


class ConflictError(RefusedError):
    """A transition the execution's current state does not allow."""


class BlueprintError(RefusedError):
    """A blueprint, or a deployment's inputs, that is not well formed: one line saying
    where (`<source>:<line>: <field.path>: <reason>`) and why; nothing was stored."""


class GraphError(DalsegnoError):
    """A task graph that is not well formed: a cycle, an unknown or a duplicate key."""


class BadReferenceError(RefusedError):
    """A workflow or operation reference that does not import."""


class LeaseLostError(DalsegnoError):
    """This process no longer holds the execution's lease: another owner took it over."""


class StoreUnavailableError(DalsegnoError):
    """The database could not be reached for longer than a write may wait (an outage), or
    it refused the write for a reason of its own: its disk full or read-only, a lock or a
    statement that timed out. The work is not at fault; the same call may succeed later."""


class StoreWriteUnknownError(StoreUnavailableError):
    """A write's COMMIT was cut off and the database did not say whether it went through:
    the write must not be sent again (its owner abandons the run to a takeover)."""


class StoreFailedError(StoreUnavailableError):
    """The store cannot be used any more until an operator acts: its SQLite file was
    deleted, replaced or found corrupt. Every later call of this process is refused."""


class RefusedTransitionError(DalsegnoError):
    """The store refused a guarded state change: it raced with another writer."""
