"""`/executions`: start, list, read, resume and cancel executions, and read their events.

Thin handlers over `ExecutionService`, the one the CLI calls: each one checks nothing the
service does not, and answers the service's JSON views. The service is blocking (SQLite),
so the handlers are plain functions that FastAPI runs in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import StringConstraints

from dalsegno.api import schemas
from dalsegno.api.auth import OPERATE, READ, caller_of, require
from dalsegno.api.errors import JsonResponse, responses
from dalsegno.api.paging import known_query_only, paged
from dalsegno.model.names import ID_PATTERN
from dalsegno.service import ExecutionService
from dalsegno.service.deployment_calls import workflow_of
from dalsegno.service.pages import MAX_EVENTS, MAX_EXECUTIONS, MAX_TASKS
from dalsegno.service.views import event_json, execution_json, plan_json

EVENT_TYPE = r"^[a-z][a-z0-9_]*$"  # the names of event types: task_failed, log...
ExecutionId = Annotated[str, Path(description="an execution id, or a unique prefix of one")]


def executions_router(service: ExecutionService, on_change: Callable[[], None]) -> APIRouter:
    """The execution routes over `service`; `on_change` wakes the manager after a write."""
    router = APIRouter(
        prefix="/executions",
        tags=["executions"],
        dependencies=[Depends(known_query_only)],
        responses=responses(401, 403, 422),
    )
    reads, writes = [Depends(require(READ))], [Depends(require(OPERATE))]

    @router.post(
        "",
        status_code=201,
        response_model=schemas.Execution,
        response_class=JsonResponse,
        responses=responses(400),
        dependencies=writes,
        summary="Start an execution",
    )
    def start_execution(request: Request, start: schemas.StartRequest) -> dict[str, Any]:
        """Create a `pending` execution of `workflow`; a manager runs it."""
        actor = caller_of(request).name
        how = {} if start.deployment_id is None else {"deployment": start.deployment_id}
        execution = service.create(
            workflow_of(start.workflow, start.deployment_id),
            start.params,
            start.lock,
            start.param_texts,
            actor=actor,
            dry_run=start.dry_run,
            task_retries=start.task_retries,
            task_retry_interval=start.task_retry_interval,
            **how,
        )
        on_change()
        return execution_json(execution)

    @router.get(
        "",
        response_model=list[schemas.Execution],
        response_class=JsonResponse,
        dependencies=reads,
        summary="List executions",
    )
    def list_executions(
        request: Request,
        response: Response,
        status: Annotated[
            list[str], Query(description="only these states (repeated, or comma-separated)")
        ] = [],  # noqa: B006 - FastAPI copies it
        workflow: Annotated[str | None, Query(description="only this workflow")] = None,
        since: Annotated[
            str | None, Query(description="created at or after: 30d, 12h, or an ISO 8601 time")
        ] = None,
        q: Annotated[
            str | None, Query(max_length=200, description="an id prefix or part of a workflow")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EXECUTIONS)] = 100,
        cursor: Annotated[str | None, Query(description="X-Next-Cursor of a page")] = None,
        deployment_id: Annotated[
            str | None,
            Query(pattern=ID_PATTERN, description="only those run against this deployment"),
        ] = None,
    ) -> list[dict[str, Any]]:
        """Executions, newest first, a page at a time (`X-Next-Cursor`, `Link`)."""
        page = service.executions_page(
            statuses=status,
            workflow=workflow,
            since=since,
            search=q,
            cursor=cursor,
            limit=limit,
            deployment=deployment_id,
        )
        paged(response, request, page)
        return [execution_json(execution) for execution in page.items]

    @router.get(
        "/{execution_id}",
        response_model=schemas.ExecutionWithTasks,
        response_class=JsonResponse,
        responses=responses(404),
        dependencies=reads,
        summary="Read an execution",
    )
    def get_execution(
        execution_id: ExecutionId,
        graph: Annotated[str | None, Query(description="only this graph's tasks")] = None,
        status: Annotated[
            list[str],
            Query(description="only tasks in these states (repeated, or comma-separated)"),
        ] = [],  # noqa: B006 - FastAPI copies it
        limit: Annotated[
            int | None, Query(ge=1, le=MAX_TASKS, description="at most this many tasks")
        ] = None,
    ) -> dict[str, Any]:
        """One execution with its tasks (all of them, or those the filters select)."""
        execution, tasks = service.get(execution_id, graph=graph, statuses=status, limit=limit)
        return execution_json(
            execution, tasks, service.actions(execution.id), service.subgraphs(execution.id)
        )

    @router.post(
        "/{execution_id}/resume",
        status_code=202,
        response_model=schemas.Execution | schemas.ResumePlan,
        response_class=JsonResponse,
        responses=responses(400, 404, 409),
        dependencies=writes,
        summary="Resume an execution",
    )
    def resume_execution(
        request: Request,
        execution_id: ExecutionId,
        resume: Annotated[schemas.ResumeRequest | None, Body()] = None,
    ) -> dict[str, Any]:
        """Hand a failed, cancelled or stuck execution back to a manager to resume.

        With `dry_run`: what the resume would do, task by task; nothing changes.
        """
        resume = resume or schemas.ResumeRequest()
        if resume.dry_run:
            return plan_json(service.plan(execution_id, resume.reset_operations))
        execution = service.hand_over_resume(
            execution_id, resume.reset_operations, actor=caller_of(request).name
        )
        on_change()
        return execution_json(execution)

    @router.post(
        "/{execution_id}/cancel",
        status_code=202,
        response_model=schemas.Execution,
        response_class=JsonResponse,
        responses=responses(400, 404, 409),
        dependencies=writes,
        summary="Cancel an execution",
    )
    def cancel_execution(
        request: Request,
        execution_id: ExecutionId,
        cancel: Annotated[schemas.CancelRequest | None, Body()] = None,
    ) -> dict[str, Any]:
        """Ask to cancel; the execution's owner carries it out."""
        mode = (cancel or schemas.CancelRequest()).mode
        execution = service.cancel(execution_id, mode, actor=caller_of(request).name)
        on_change()
        return execution_json(execution)

    @router.get(
        "/{execution_id}/events",
        response_model=list[schemas.Event],
        response_class=JsonResponse,
        responses=responses(404),
        dependencies=reads,
        summary="Read an execution's events",
    )
    def list_events(
        request: Request,
        response: Response,
        execution_id: ExecutionId,
        after: Annotated[schemas.EventId | None, Query(description="only events after it")] = None,
        cursor: Annotated[str | None, Query(description="X-Next-Cursor of a page")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
        task: Annotated[str | None, Query(description="only this task's (its key)")] = None,
        graph: Annotated[str | None, Query(description="only this graph's")] = None,
        level: Annotated[
            Literal["debug", "info", "warning", "error"] | None,
            Query(description="only this level and the more severe ones"),
        ] = None,
        type: Annotated[
            list[Annotated[str, StringConstraints(pattern=EVENT_TYPE, max_length=64)]],
            Query(description="only these types (snake_case names: task_failed, log...)"),
        ] = [],  # noqa: B006 - FastAPI copies the default
    ) -> list[dict[str, Any]]:
        """The execution's events and logs, oldest first, a page at a time: `X-Next-Cursor`
        is where the next page starts, on the last page too (for what comes later)."""
        page = service.events_page(
            execution_id,
            after=after,
            cursor=cursor,
            limit=limit,
            graph=graph,
            task=task,
            level=level,
            types=type,
        )
        paged(response, request, page)
        return [event_json(event) for event in page.items]

    return router
