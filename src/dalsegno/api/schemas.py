"""The REST API's bodies and answers (docs/interface.md "REST API"), as pydantic models.

The answers mirror `dalsegno.service.views`, the same JSON the CLI prints with `--json`:
the handlers return those dicts and FastAPI checks them against these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    WithJsonSchema,
)

from dalsegno.model.states import ExecutionState, TaskState

Timestamp = Annotated[
    str, WithJsonSchema({"type": "string", "format": "date-time", "description": "UTC, ISO 8601"})
]

# A NUL character can name no module and no file: refusing it here keeps it away from the
# import machinery, which raises on it (the CLI cannot pass one at all).
WorkflowReference = Annotated[
    str,
    Field(
        min_length=1,
        pattern=r"^[^\x00]+$",
        description="`module:function` or `path/file.py:function`, on the manager's host",
        examples=["deploy.py:deploy"],
    ),
]

# Event ids are the ones this API hands out; they are numbers the store compares, so only
# digits that fit a 64-bit integer are let through to it.
EventId = Annotated[str, Field(pattern=r"^[0-9]{1,18}$", description="an event id from this API")]


def _whole(value: Any) -> Any:
    """2.0 is the whole number 2: JSON has one number type, and the document's `integer`
    admits it, so the server must take it (a bool and 2.5 stay refused)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# A whole number as JSON Schema's `integer` means it: 7 and 7.0, never true or 7.5.
WholeNumber = Annotated[int, BeforeValidator(_whole), Strict()]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(Request):
    """Start `workflow` with `params`; a manager runs it."""

    workflow: WorkflowReference
    params: dict[str, Any] = Field(
        default_factory=dict, description="the workflow function's keyword arguments"
    )
    lock: str | None = Field(
        default=None,
        pattern=r"\S",
        description="a lock key: while another active execution holds it, this one waits queued",
    )
    param_texts: dict[str, str] | None = Field(
        default=None,
        description="command-line texts of params (`-p KEY=VALUE`): where the JSON value in "
        "`params` does not fit the parameter's annotation, its text is read by the "
        "annotation instead",
    )
    dry_run: StrictBool = Field(
        default=False,
        description="run the workflow and store its graphs, but call no operation: each task "
        "logs what it would run and succeeds; its resumes stay dry",
    )
    deployment_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="run against this deployment, holding its lock; with it, a built-in "
        "workflow's bare name (install, uninstall, heal, scale, execute_operation) is "
        "`dalsegno.lifecycle`'s",
    )
    task_retries: (
        Annotated[WholeNumber, Field(ge=-1), WithJsonSchema({"type": "integer", "minimum": -1})]
        | None
    ) = Field(
        default=None,
        description="retries of every task that sets none, nor its operation (-1: forever); "
        "else the workflow's `task_retries`",
    )
    task_retry_interval: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)] | None = (
        Field(
            default=None,
            description="seconds between the retries of every task that sets no interval, nor "
            "its operation; else the workflow's `task_retry_interval`",
        )
    )


class ResumeRequest(Request):
    """Resume a failed, cancelled or stuck execution (docs/design.md section 3)."""

    reset_operations: StrictBool = Field(
        default=False, description="also reset interrupted (sent, started) tasks to pending"
    )
    dry_run: StrictBool = Field(
        default=False, description="answer what a resume would do; change nothing"
    )


class CancelRequest(Request):
    """Ask to cancel: `force` cancels at once, `kill` also stops running operations."""

    mode: Literal["cancel", "force", "kill"] = "cancel"


class Error(BaseModel):
    """Every refusal: a one-line reason."""

    error: str


class Answer(BaseModel):
    """An answer built by `dalsegno.service.views`: the fields listed here are pinned by
    docs/interface.md; fields the views add later pass through, as docs/interface.md allows."""

    model_config = ConfigDict(extra="allow")


class Task(Answer):
    id: str
    graph: str
    key: str
    operation: str
    agent: str | None = Field(description="the queue name, or null for a manager-side task")
    status: TaskState
    retries: int
    error: str | None
    result: Any
    subgraph: str | None = Field(None, description="the innermost subgraph it is in")
    ignored: bool = Field(False, description="failed, and its policy ignores the failure")


class TaskSummary(Answer):
    """A task in a list: no result (read the task for it)."""

    id: str
    graph: str
    key: str
    operation: str
    agent: str | None
    status: TaskState
    retries: int
    error: str | None
    attempt_count: int
    started_at: Timestamp | None
    ended_at: Timestamp | None
    retry_at: Timestamp | None = Field(description="when a rescheduled task runs again")
    subgraph: str | None = Field(None, description="the innermost subgraph it is in")
    ignored: bool = Field(False, description="failed, and its policy ignores the failure")


class Attempt(Answer):
    number: int = Field(description="1 for the first attempt")
    worker: str = Field(description="where it ran: a thread of a manager, or an agent")
    started_at: Timestamp
    ended_at: Timestamp | None
    outcome: str
    error: str | None = Field(description="the error, with its traceback when there was one")
    result: Any = Field(description="the result, on the attempt that succeeded")


class Execution(Answer):
    id: str
    workflow: str
    status: ExecutionState
    params: dict[str, Any] | None = Field(
        description="null in a list when larger than 4 KiB: read the execution for them"
    )
    error: str | None = Field(description="in a list, cut at 1,000 characters")
    created_at: Timestamp
    started_at: Timestamp | None
    ended_at: Timestamp | None
    lock: str | None = Field(description="its lock key, or null")
    runs: int = Field(0, description="how many times it was taken up: start, resumes, takeovers")
    first_started_at: Timestamp | None = Field(
        None, description="its first start; its duration runs from here to `ended_at`"
    )
    dry_run: bool = Field(
        False, description="a dry run: no operation is called, and its resumes stay dry"
    )
    task_retries: int | None = Field(
        None, description="the retries of its tasks that set none, nor their operation"
    )
    task_retry_interval: float | None = Field(
        None, description="the retry interval of its tasks that set none, nor their operation"
    )
    deployment_id: str | None = Field(
        None, description="the deployment it runs against (holding its lock), or null"
    )


class Action(Answer):
    """Who asked for what: a start, a resume, a cancel, with the actor that asked."""

    type: str
    actor: str = Field(description="a token's name, `admin`, or `local:USER` (the CLI)")
    message: str
    created_at: Timestamp


class Subgraph(Answer):
    graph: str
    key: str
    parent: str | None = Field(description="the subgraph it is nested in; null: the graph")
    status: str = Field(description="pending, retrying (waits until retry_at) or failed")
    retries: int
    max_retries: int = Field(description="-1: retries forever")
    retry_interval: float
    on_failure: str
    ignored: bool = Field(description="failed, and its policy ignores the failure")
    retry_at: Timestamp | None
    error: str | None


class ExecutionWithTasks(Execution):
    tasks: list[Task]
    actions: list[Action] = Field(
        default_factory=list, description="who started, resumed and cancelled it, oldest first"
    )
    subgraphs: list[Subgraph] = Field(
        default_factory=list, description="its subgraphs with their retry counts"
    )


class Event(Answer):
    id: str
    execution_id: str
    graph: str | None = Field(description="null for an event of the whole execution")
    task_key: str | None = Field(description="null for an event of the whole execution")
    type: str
    level: str
    message: str
    created_at: Timestamp
    actor: str | None = Field(
        default=None, description="who asked for it (start, resume, cancel); null otherwise"
    )


class TaskDetail(TaskSummary):
    execution_id: str
    max_retries: int
    timeout: float | None
    kwargs: dict[str, Any]
    result: Any
    attempts: list[Attempt]
    events: list[Event]


class PlannedTask(Answer):
    graph: str
    key: str
    operation: str
    agent: str | None
    status: str
    action: str
    reason: str


class PlannedSubgraph(Answer):
    graph: str
    key: str
    parent: str | None
    status: str
    retries: int
    max_retries: int = Field(description="-1: retries forever")
    on_failure: str
    action: str
    reason: str


class ResumePlan(Answer):
    """What a resume would do, task by task (the answer to a dry run)."""

    execution_id: str
    workflow: str
    status: str
    reset_operations: bool
    workflow_resumable: bool
    take_up: str | None = None  # "resume" (failed or cancelled) or "recover" (crashed)
    lock_key: str | None = None
    lock_holder: str | None = None  # the execution it would wait for in `queued`
    dry_run: bool = False  # a dry-run execution: its resume is simulated too
    tasks: list[PlannedTask]
    subgraphs: list[PlannedSubgraph] = []
