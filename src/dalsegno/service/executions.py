"""The service layer: what the CLI (and the REST API and web UI after it) can ask for.

It checks every request before anything is written, so a refusal changes nothing, and
hands the running itself to the engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dalsegno.engine import events
from dalsegno.engine.fates import served_resumability
from dalsegno.engine.lease import lease_is_free, this_owner
from dalsegno.engine.lifecycle import Lifecycle, by, holder_line
from dalsegno.engine.references import normalize
from dalsegno.engine.resume import ResumePlan, check_resumable, manual_take_up, plan_resume
from dalsegno.engine.runner import EngineConfig, EventListener, Outcome
from dalsegno.model.definitions import WorkflowDefinition, check_execution_retries
from dalsegno.model.errors import ConflictError, NotFoundError, RefusedError
from dalsegno.model.limits import MAX_PARAMS, too_large
from dalsegno.model.records import (
    EventRecord,
    ExecutionRecord,
    ExecutionSettings,
    TaskRecord,
)
from dalsegno.model.states import (
    CANCELLING_STATES,
    EXECUTION_END_STATES,
    CancelMode,
    ExecutionState,
    TakeUp,
    can_move_execution,
)
from dalsegno.service.blueprints import BlueprintService
from dalsegno.service.deployments import (
    DeploymentService,
    against_deployment,
    lifecycle_reference,
)
from dalsegno.service.housekeeping import ExecutionHousekeeping
from dalsegno.service.pages import MAX_EVENTS
from dalsegno.service.params import check_params as params_fitting
from dalsegno.service.reads import ExecutionReads
from dalsegno.store.base import Store

E = ExecutionState
# The state each cancel mode asks for, by the mode's name (`dalsegno.model.states.CancelMode`).
CANCEL_TARGETS = {mode.value: mode.target for mode in CancelMode}
CrashHook = Callable[[str, str, str], bool]


@dataclass(frozen=True, slots=True)
class RunResult:
    """An execution run in this process, and how the run ended here."""

    execution_id: str
    outcome: Outcome

    @property
    def status(self) -> ExecutionState | None:
        return self.outcome.status


class ExecutionService(ExecutionReads, ExecutionHousekeeping):
    """Start, resume, cancel and read executions on one store."""

    def __init__(self, store: Store, config: EngineConfig | None = None) -> None:
        self.store = store
        self.config = config or EngineConfig()

    @property
    def blueprints(self) -> BlueprintService:
        """Blueprints on this service's store (docs/lifecycle.md)."""
        return BlueprintService(self.store)

    @property
    def deployments(self) -> DeploymentService:
        """Deployments on this service's store; start a lifecycle workflow against one
        with `start`/`create(..., deployment=ID)` (docs/lifecycle.md)."""
        return DeploymentService(self.store)

    @property
    def lifecycle(self) -> Lifecycle:
        """The lifecycle on this service's store as it is now (metrics may wrap it later)."""
        return Lifecycle(self.store, self.config)

    # reading -------------------------------------------------------------------

    def find(self, execution_id: str) -> ExecutionRecord:
        """The execution with this id (or a unique prefix of it)."""
        if not isinstance(execution_id, str) or not execution_id.strip():
            msg = "an execution id is required"
            raise RefusedError(msg)
        found = self.store.get_execution(execution_id)
        if found is not None:
            return found
        candidates = self.store.find_execution_ids(execution_id) if len(execution_id) >= 4 else []
        if len(candidates) == 1:
            found = self.store.get_execution(candidates[0])
            if found is not None:
                return found
        if len(candidates) > 1:
            msg = f"execution id prefix '{execution_id}' is ambiguous"
            raise RefusedError(msg)
        msg = f"unknown execution: {execution_id}"
        raise NotFoundError(msg)

    def get(
        self,
        execution_id: str,
        *,
        graph: str | None = None,
        statuses: Sequence[str] = (),
        limit: int | None = None,
    ) -> tuple[ExecutionRecord, list[TaskRecord]]:
        """The execution with its tasks: all of them, or those of `graph`, in `statuses`,
        the first `limit` (`dalsegno.service.pages`)."""
        execution = self.find(execution_id)
        if graph is None and not statuses and limit is None:
            return execution, self.store.list_tasks(execution.id)
        return execution, self.matching_tasks(execution.id, graph, statuses, limit)

    def task_counts(self, execution_id: str) -> dict[str, int]:
        """How many tasks of the execution are in each state."""
        return self.store.count_tasks_by_status(execution_id)

    def list_executions(self, status: str | None = None) -> list[ExecutionRecord]:
        """Executions newest first, as list views show them (`dalsegno.model.limits`)."""
        return self.store.list_executions(parse_status(status) if status else None, brief=True)

    def events(
        self,
        execution_id: str,
        after: str | None = None,
        limit: int | None = None,
        **filters: Any,
    ) -> list[EventRecord]:
        """The execution's events after the event id `after`: the first `limit` (all:
        None), of a task, a graph, a level and up, some types (`events_page`'s filters)."""
        found: list[EventRecord] = []
        cursor = None
        while limit is None or len(found) < limit:
            size = MAX_EVENTS if limit is None else min(MAX_EVENTS, limit - len(found))
            page = self.events_page(execution_id, after=after, cursor=cursor, limit=size, **filters)
            found.extend(page.items)
            if not page.more:
                break
            cursor = page.cursor
        return found

    # starting ------------------------------------------------------------------

    def prepare(
        self, workflow: str, params: Any, texts: Mapping[str, str] | None = None
    ) -> tuple[str, Callable[..., Any], WorkflowDefinition, dict[str, Any]]:
        """Check a start request: the reference imports and the params fit the workflow
        (`texts`: the command-line texts of `-p` values, read by the annotations)."""
        if not isinstance(workflow, str) or not workflow.strip() or not _encodable(workflow):
            msg = "a workflow reference is required (module:function or path/file.py:function)"
            raise RefusedError(msg)
        reference = normalize(workflow.strip())
        # as given: an allow-list's refusal names what the caller asked for
        func, definition = self.config.workflows.resolve(workflow.strip())
        checked = check_params(func, params, texts)
        return reference, func, definition, checked

    def start(
        self,
        workflow: str,
        params: Any = None,
        *,
        listener: EventListener | None = None,
        crash_hook: CrashHook | None = None,
        on_created: Callable[[str], None] | None = None,
        lock: str | None = None,
        texts: Mapping[str, str] | None = None,
        actor: str | None = None,
        dry_run: bool = False,
        task_retries: Any = None,
        task_retry_interval: Any = None,
        deployment: str | None = None,
    ) -> RunResult:
        """Create an execution and run it here to its end, holding its lease.

        With a `lock` key another active execution holds, it waits in `queued` first.
        `actor` (who asked: `dalsegno.model.access`) is recorded on its first event.
        `dry_run`, `task_retries` and `task_retry_interval` are stored with it
        (`execution_settings`). Against a `deployment` it takes the deployment's lock key,
        and a built-in lifecycle workflow may be named alone (`install`).
        """
        if deployment is not None:
            workflow = lifecycle_reference(workflow)
        reference, func, definition, checked = self.prepare(workflow, params or {}, texts)
        settings = execution_settings(definition, dry_run, task_retries, task_retry_interval)
        lock, settings = against_deployment(self.store, deployment, check_lock(lock), settings)
        started = by(actor, events.workflow_started(definition.name, settings))
        execution = self.store.create_execution(
            reference,
            checked,
            E.STARTED,
            this_owner(),
            time.time() + self.config.lease_timeout,
            [started],
            lock_key=lock,
            settings=settings,
        )
        if on_created is not None:
            on_created(execution.id)
        if listener is not None:
            listener([started])
        if execution.status is E.QUEUED:
            claimed = self.lifecycle.claim_when_free(execution)
            if claimed is None:  # cancelled while it waited, or a manager took it first
                return RunResult(execution.id, self.lifecycle.await_end(execution.id))
            execution = claimed
        run = self.lifecycle.open(
            execution,
            definition.name,
            TakeUp.START,
            graphs={},
            listener=listener,
            crash_hook=crash_hook,
        )
        return RunResult(execution.id, run.run(func, checked))

    def create(
        self,
        workflow: str,
        params: Any = None,
        lock: str | None = None,
        texts: Mapping[str, str] | None = None,
        *,
        actor: str | None = None,
        dry_run: bool = False,
        task_retries: Any = None,
        task_retry_interval: Any = None,
        deployment: str | None = None,
    ) -> ExecutionRecord:
        """Create a `pending` execution for a manager to run (the REST API's start).

        With a `lock` key another active execution holds, it waits in `queued`; against a
        `deployment`, the lock key is the deployment's (as `start`).
        """
        if deployment is not None:
            workflow = lifecycle_reference(workflow)
        reference, _, definition, checked = self.prepare(workflow, params or {}, texts)
        settings = execution_settings(definition, dry_run, task_retries, task_retry_interval)
        lock, settings = against_deployment(self.store, deployment, check_lock(lock), settings)
        return self.store.create_execution(
            reference,
            checked,
            E.PENDING,
            None,
            None,
            [by(actor, events.workflow_started(definition.name, settings))],
            lock_key=lock,
            settings=settings,
        )

    # resuming ------------------------------------------------------------------

    def check_resume(self, execution_id: str) -> ExecutionRecord:
        """Refuse a resume that is not allowed, before anything is shown or written."""
        execution = self.find(execution_id)
        check_resumable(execution)
        self.config.workflows.resolve(execution.workflow)
        return execution

    def plan(self, execution_id: str, reset_operations: bool = False) -> ResumePlan:
        """What a resume would do, task by task; refuses what resume would refuse."""
        execution = self.find(execution_id)
        check_resumable(execution)
        _, definition = self.config.workflows.resolve(execution.workflow)
        graphs = self.store.load_graphs(execution.id) if definition.resumable else {}
        tasks = [task for graph in graphs.values() for task in graph.tasks]
        plan = plan_resume(
            execution,
            tasks,
            reset_operations,
            definition.resumable,
            graphs=graphs.values(),
            bound=served_resumability(self.config.workflows),
        )
        if execution.lock_key is not None and plan.take_up == TakeUp.RESUME:
            plan.lock_key = execution.lock_key
            plan.lock_holder = self.store.lock_holder(execution.lock_key, execution.id)
        return plan

    def resume(
        self,
        execution_id: str,
        reset_operations: bool = False,
        *,
        listener: EventListener | None = None,
        crash_hook: CrashHook | None = None,
        actor: str | None = None,
    ) -> RunResult:
        """Resume a failed, cancelled or crashed execution here (docs/design.md, "Resume:
        the rules"): a crashed one is taken over, as a manager would; a failed or cancelled
        one has its failed tasks reset first; either waits in `queued` while another
        execution holds its lock key."""
        execution = self.find(execution_id)
        check_resumable(execution)
        func, definition = self.config.workflows.resolve(execution.workflow)
        if execution.status in CANCELLING_STATES:
            execution = self.lifecycle.finish_cancel(execution, definition.name)
        take_up = manual_take_up(execution)
        graphs = self.store.load_graphs(execution.id)
        claimed, written = self.lifecycle.claim_resume(
            execution, graphs, take_up, reset_operations, definition, here=True, actor=actor
        )
        if claimed.status is E.QUEUED:
            holder = self.store.lock_holder(claimed.lock_key or "", claimed.id)
            written = [*written, *holder_line(claimed, holder)]
        if listener is not None:
            listener(written)
        if claimed.status is E.QUEUED:
            waited = self.lifecycle.claim_when_free(claimed)
            if waited is None:  # cancelled while it waited, or a manager took it first
                return RunResult(claimed.id, self.lifecycle.await_end(claimed.id))
            claimed = waited
        run = self.lifecycle.open(
            claimed,
            definition.name,
            take_up,
            graphs=graphs,
            listener=listener,
            crash_hook=crash_hook,
        )
        return RunResult(claimed.id, self.lifecycle.run(run, claimed, take_up, func, definition))

    def hand_over_resume(
        self, execution_id: str, reset_operations: bool = False, *, actor: str | None = None
    ) -> ExecutionRecord:
        """Resume through a manager: write the resets and leave the execution `pending`
        (or `queued` behind its lock key) with the kind of take-up it waits for.

        A crashed execution keeps its state with a void lease: a manager takes it over at
        once, by the same rules. A `*cancelling` one whose owner is gone has its cancel
        finished first, then is resumed as a cancelled one, as `resume` does here. Returns
        the execution as it now is.
        """
        execution = self.find(execution_id)
        check_resumable(execution)
        _, definition = self.config.workflows.resolve(execution.workflow)
        if execution.status in CANCELLING_STATES:  # as here: the cancel ends, then resume
            execution = self.lifecycle.finish_cancel(execution, definition.name)
        graphs = self.store.load_graphs(execution.id)
        claimed, _ = self.lifecycle.claim_resume(
            execution,
            graphs,
            manual_take_up(execution),
            reset_operations,
            definition,
            here=False,
            actor=actor,
        )
        return claimed

    # cancelling ----------------------------------------------------------------

    def cancel(
        self, execution_id: str, mode: str = "cancel", *, actor: str | None = None
    ) -> ExecutionRecord:
        """Ask to cancel; the owner carries it out. An execution nobody runs ends at once."""
        target = CANCEL_TARGETS.get(mode)
        if target is None:
            msg = f"unknown cancel mode {mode!r}: use cancel, force or kill"
            raise RefusedError(msg)
        execution = self.find(execution_id)
        status = execution.status
        if status in EXECUTION_END_STATES:
            msg = f"Cannot cancel - execution {execution.id} is {status}"
            raise ConflictError(msg)
        name = execution.workflow.rpartition(":")[2]
        requested = by(actor, events.cancel_requested(name, mode))
        if status in (E.PENDING, E.QUEUED):
            done = self.store.request_cancel(
                execution.id, E.CANCELLED, [requested, events.workflow_cancelled(name)]
            )
            return self._moved(done, execution)
        if status is target:
            return execution
        if not can_move_execution(status, target):
            msg = f"Cannot cancel - execution {execution.id} is {status}; {mode} is not allowed"
            raise ConflictError(msg)
        if lease_is_free(execution.lease_owner, execution.lease_expires_at):
            return self.lifecycle.finish_cancel(execution, name, target, requested)
        return self._moved(self.store.request_cancel(execution.id, target, [requested]), execution)

    def _moved(self, done: ExecutionRecord | None, before: ExecutionRecord) -> ExecutionRecord:
        if done is None:
            msg = f"execution {before.id} changed while cancelling; try again"
            raise ConflictError(msg)
        return done


def execution_settings(
    definition: WorkflowDefinition, dry_run: Any, task_retries: Any, task_retry_interval: Any
) -> ExecutionSettings:
    """What an execution is started with besides its params, checked before anything is
    stored: a dry run (a bool), its tasks' retries (a whole number >= -1, -1 forever) and
    retry interval (seconds >= 0). A setting not given is its workflow's (`@workflow`'s
    `task_retries`, `task_retry_interval`), read now and stored, so every take-up of the
    execution uses the same values (docs/design.md, "Retry settings")."""
    if not isinstance(dry_run, bool):
        msg = f"dry_run must be true or false, not {dry_run!r}"
        raise RefusedError(msg)
    try:
        check_execution_retries(task_retries, task_retry_interval)
    except ValueError as exc:
        raise RefusedError(str(exc)) from None
    retries = definition.task_retries if task_retries is None else task_retries
    interval = (
        definition.task_retry_interval if task_retry_interval is None else task_retry_interval
    )
    return ExecutionSettings(dry_run, retries, None if interval is None else float(interval))


def check_lock(lock: str | None) -> str | None:
    if lock is None:
        return None
    if not isinstance(lock, str) or not lock.strip() or len(lock) > 255 or not _encodable(lock):
        msg = "a lock key is a non-empty string of at most 255 characters"
        raise RefusedError(msg)
    return lock.strip()


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def parse_status(status: str) -> ExecutionState:
    try:
        return ExecutionState(status)
    except ValueError:
        names = ", ".join(state.value for state in ExecutionState)
        msg = f"unknown status {status!r}: use one of {names}"
        raise RefusedError(msg) from None


def check_params(
    func: Callable[..., Any], params: Any, texts: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Params are a JSON object that fits the workflow function's signature and annotations
    (`dalsegno.service.params`), at most `MAX_PARAMS` as stored; `texts` are the
    command-line texts of `-p` values."""
    checked = params_fitting(func, params, texts)
    refused = too_large("params", json.dumps(checked), MAX_PARAMS)
    if refused is not None:
        raise RefusedError(refused)
    return checked
