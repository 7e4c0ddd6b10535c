"""What happens to each task when an execution is taken up again: the one home of the
resume rules of docs/design.md ("Resume: the rules", "The lifecycle").

`fate` decides it from the task's state, where it runs, whether its operation is
resumable, the kind of take-up and `--reset-operations`. The dry-run plan prints it, a
manual resume writes the resets it names, the scheduler places each task with `placement`
(the same rules, after the resets), and the owner decides a lost agent's attempt with
`lost_attempt`; so the plan shown is, by construction, the plan carried out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from dalsegno.engine.references import WorkflowSource, resolve_operation
from dalsegno.model.errors import BadReferenceError, RefusedError
from dalsegno.model.states import TakeUp, TaskState

S = TaskState


class Action(StrEnum):
    """What a take-up does to one task."""

    KEPT = "kept"  # succeeded: never runs again
    RUN = "run"  # runs normally: a new attempt, `ctx.resume` false
    RERUN = "re-run"  # interrupted and resumable: runs again with `ctx.resume` true
    RESET = "reset"  # reset to pending with retries 0 first, then runs
    AWAITED = "awaited"  # on an agent: its result is awaited, it is not sent twice
    FAIL = "fail"  # interrupted and not resumable: fails at the take-up
    FAILED = "failed"  # failed, and nothing resets it: stays failed
    HELD = "held"  # inside a subgraph that failed: never starts, stays as it is
    RETRY = "retry"  # a subgraph with a task inside that fails at the take-up: retries


@dataclass(frozen=True, slots=True)
class Fate:
    action: Action
    reason: str

    @property
    def resets(self) -> bool:
        return self.action is Action.RESET


# Whether an operation may run again after an interruption: (resumable, why not when it
# cannot be known: the reference does not import).
Resumability = Callable[[str], tuple[bool, str | None]]

IN_FLIGHT = frozenset({S.SENT, S.STARTED})


def simulated(_operation: str) -> tuple[bool, str | None]:
    """The resumability of a dry run's operations: none was ever called, so each
    interrupted one is simulated again (docs/design.md, "Dry runs")."""
    return True, None


def where_it_runs(agent: str | None, dry_run: bool) -> str | None:
    """A dry run simulates every task in its owner: none is sent to an agent's queue."""
    return None if dry_run else agent


def resets(state: TaskState, take_up: TakeUp, reset_operations: bool) -> bool:
    """Whether the take-up resets the task to `pending` (retries 0) before it runs.

    Only a person resets: a resume of a failed or cancelled execution resets its failed
    and rescheduled tasks; `--reset-operations` also resets interrupted ones, for a crashed
    execution too. A takeover resets nothing.
    """
    if take_up is TakeUp.RESUME:
        return state in (S.FAILED, S.RESCHEDULED) or (reset_operations and state in IN_FLIGHT)
    if take_up is TakeUp.RECOVER:
        return reset_operations and state in IN_FLIGHT
    return False


def fate(
    state: TaskState,
    key: str,
    operation: str,
    agent: str | None,
    take_up: TakeUp,
    reset_operations: bool,
    resumable: Resumability,
    *,
    in_reset_subgraph: bool = False,
) -> Fate:
    """What the take-up does to one task (the row of the rule table for its state).

    `in_reset_subgraph`: the task is inside a subgraph the take-up resets as a unit
    (`subgraph_fate`): whatever its state, it goes back to pending and runs."""
    if in_reset_subgraph and state is not S.PENDING:
        return Fate(Action.RESET, f"{state}: its subgraph is reset: to pending, then run")
    if resets(state, take_up, reset_operations):
        if state in IN_FLIGHT:
            why = f"{state}: reset to pending (--reset-operations), then run"
        else:
            why = f"{state}: reset to pending with retries 0, then run"
        return Fate(Action.RESET, why)
    return placement(state, key, operation, agent, resumable)


def placement(  # noqa: PLR0911 - the rule table, one row a return
    state: TaskState, key: str, operation: str, agent: str | None, resumable: Resumability
) -> Fate:
    """Where a task goes when a run takes the graph up, from its stored state (after the
    resets of a manual resume, which are written first)."""
    if state is S.SUCCEEDED:
        return Fate(Action.KEPT, "succeeded: never run again")
    if state is S.FAILED:
        return Fate(Action.FAILED, "failed: stays failed and blocks its dependents")
    if state is S.PENDING:
        return Fate(Action.RUN, "pending: runs when its dependencies succeeded")
    if state is S.RESCHEDULED:
        return Fate(Action.RUN, "rescheduled: runs when its retry is due (retry count kept)")
    if agent is not None:
        return Fate(Action.AWAITED, f"{state} on agent queue '{agent}': its result is awaited")
    if state is S.SENT:
        return Fate(Action.RUN, "sent but never started: submitted again")
    can, why_not = resumable(operation)
    if why_not is not None:
        return Fate(Action.FAIL, f"Cannot resume - {why_not}")
    if can:
        return Fate(Action.RERUN, "started and interrupted; the operation is resumable: run again")
    return Fate(Action.FAIL, f"Cannot resume - operation not resumable: {key} ({operation})")


# subgraphs (docs/design.md, "Subgraphs and failure policies") ----------------------

SUB_PENDING, SUB_RETRYING, SUB_FAILED = "pending", "retrying", "failed"


def subgraph_resets(status: str, take_up: TakeUp) -> bool:
    """Whether the take-up resets a subgraph: only a person's resume of a failed or
    cancelled execution, of a subgraph that ran out of retries (`failed`: its tasks are
    reset with it) or waits for a retry; its retry count goes back to 0."""
    return take_up is TakeUp.RESUME and status in (SUB_FAILED, SUB_RETRYING)


def subgraph_fate(
    status: str, retries: int, max_retries: int, on_failure: str, take_up: TakeUp
) -> Fate:
    """What the take-up does to one subgraph (its tasks have their own fates)."""
    if subgraph_resets(status, take_up):
        if status == SUB_FAILED:
            return Fate(Action.RESET, "failed: reset with every task inside, retry count 0")
        return Fate(Action.RESET, "waits for a retry: retry count 0, runs at once")
    limit = "unlimited" if max_retries < 0 else str(max_retries)
    if status == SUB_RETRYING:
        return Fate(Action.RUN, f"waits for retry {retries}/{limit}: runs when due (kept)")
    if status == SUB_FAILED:
        if on_failure == "ignore":
            return Fate(Action.FAILED, "failed (ignored): stays failed, its dependents run")
        return Fate(Action.FAILED, "failed: stays failed and blocks its dependents")
    return Fate(Action.RUN, f"runs as a unit (retry count {retries}/{limit} kept)")


@dataclass(frozen=True, slots=True)
class SubgraphFound:
    """A subgraph as a take-up finds it, after the resume's resets."""

    parent: str | None
    status: str
    retries: int
    max_retries: int
    on_failure: str


def subgraph_failures(
    subs: dict[str, SubgraphFound], failing: dict[str, str]
) -> tuple[dict[str, Fate], dict[str, str]]:
    """What a take-up does to the subgraphs that fail as it starts (docs/design.md,
    "Subgraphs and failure policies"), as `dalsegno.engine.subgraphs.Groups` does it.

    `failing`: each subgraph (innermost) with a task inside that fails at the take-up
    (`fail` or `failed`, its policy `fail`), and that task. A subgraph found `failed`
    applies its policy again. Then, outer subgraphs first, each `pending` one retries
    (every task and subgraph inside reset, its retry count up by one) or, out of retries,
    fails, and its policy applies to the one it is in; one inside a subgraph that failed
    starts nothing and stays as it is. Returns the fates that replace `subgraph_fate`'s and
    each subgraph's state once the take-up began.
    """
    status = {key: sub.status for key, sub in subs.items()}
    retries = {key: sub.retries for key, sub in subs.items()}
    fates: dict[str, Fate] = {}
    waiting: dict[str, str] = {}

    def chain(key: str | None) -> list[str]:
        found = []
        while key is not None:
            found.append(key)
            key = subs[key].parent
        return found

    def applies(key: str) -> None:
        parent = subs[key].parent
        if subs[key].on_failure != "ignore" and parent is not None and status[parent] == "pending":
            waiting.setdefault(parent, f"subgraph '{key}'")

    for key, culprit in failing.items():
        if status[key] == SUB_PENDING:
            waiting.setdefault(key, culprit)
    for key in subs:
        if status[key] == SUB_FAILED:
            applies(key)
    while waiting:
        for key in sorted(waiting, key=lambda found: len(chain(found))):  # outer first
            culprit = waiting.pop(key, "")
            if not culprit or any(status[k] != SUB_PENDING for k in chain(subs[key].parent)):
                continue
            limit = "unlimited" if subs[key].max_retries < 0 else str(subs[key].max_retries)
            if subs[key].max_retries >= 0 and retries[key] >= subs[key].max_retries:
                status[key] = SUB_FAILED
                fates[key] = Fate(
                    Action.FAIL,
                    f"{culprit} fails at the take-up: out of retries ({retries[key]}/{limit})",
                )
                applies(key)
                continue
            retries[key] += 1
            fates[key] = Fate(
                Action.RETRY,
                f"{culprit} fails at the take-up: retry {retries[key]}/{limit}, every task "
                "inside reset to pending, then run",
            )
            for inner in (found for found in subs if key in chain(subs[found].parent)):
                waiting.pop(inner, "")
                status[inner], retries[inner] = SUB_PENDING, 0
                fates[inner] = Fate(Action.RESET, f"inside '{key}', which retries: reset with it")
    return fates, status


def interrupted_on_agent(agent: str, key: str, operation: str) -> str:
    return f"operation interrupted on agent {agent} and not resumable: {key} ({operation})"


def lost_attempt(
    state: TaskState, key: str, operation: str, agent: str, resumable: Resumability
) -> Fate:
    """An agent task whose agent missed its heartbeats: queued again, or failed.

    A claim that never started never ran; a started resumable operation may run again; a
    started non-resumable one fails with the documented message.
    """
    if state is S.SENT:
        return Fate(Action.RUN, "claimed, never started: queued again")
    can, _ = resumable(operation)
    if can:
        return Fate(Action.RERUN, "queued again (resumable)")
    return Fate(Action.FAIL, interrupted_on_agent(agent, key, operation))


def operation_resumability(operation: str) -> tuple[bool, str | None]:
    """The `Resumability` of the engine: the operation's declaration, imported."""
    try:
        _, definition = resolve_operation(operation)
    except BadReferenceError as exc:
        return False, str(exc)
    return definition.resumable, None


def served_resumability(source: WorkflowSource) -> Resumability:
    """The `Resumability` of a lifecycle task (its operation from a blueprint): the
    operation `source` serves; one a manager does not serve is not resumable, with the
    reason, and is never imported."""

    def resumable(operation: str) -> tuple[bool, str | None]:
        try:
            _, definition = source.operation(operation)
        except RefusedError as exc:
            return False, str(exc)
        return definition.resumable, None

    return resumable
