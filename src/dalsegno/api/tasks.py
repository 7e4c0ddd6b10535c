"""`/executions/{id}/tasks`: an execution's tasks a page at a time, and one task with its
attempts and log lines: why it failed, where it ran, when it runs again.

A task is named by its key (URL-encoded), with `?graph=` when the key is in several
graphs; a number that is no key of the execution is read as a task id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from dalsegno.api import schemas
from dalsegno.api.auth import READ, require
from dalsegno.api.errors import JsonResponse, responses
from dalsegno.api.paging import known_query_only, paged
from dalsegno.service import ExecutionService
from dalsegno.service.pages import MAX_TASKS
from dalsegno.service.views import task_detail_json, task_summary_json

ExecutionId = Annotated[str, Path(description="an execution id, or a unique prefix of one")]


def tasks_router(service: ExecutionService) -> APIRouter:
    router = APIRouter(
        prefix="/executions",
        tags=["tasks"],
        dependencies=[Depends(require(READ)), Depends(known_query_only)],
        responses=responses(401, 403, 404, 422),
    )

    @router.get(
        "/{execution_id}/tasks",
        response_model=list[schemas.TaskSummary],
        response_class=JsonResponse,
        summary="List an execution's tasks",
    )
    def list_tasks(
        request: Request,
        response: Response,
        execution_id: ExecutionId,
        graph: Annotated[str | None, Query(description="only this graph's")] = None,
        status: Annotated[
            list[str], Query(description="only these states (repeated, or comma-separated)")
        ] = [],  # noqa: B006 - FastAPI copies it
        key: Annotated[str | None, Query(max_length=255, description="keys containing it")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TASKS)] = 1000,
        cursor: Annotated[str | None, Query(description="X-Next-Cursor of a page")] = None,
    ) -> list[dict[str, Any]]:
        """The tasks in the order they were stored, without their results."""
        page = service.tasks_page(
            execution_id, graph=graph, statuses=status, key=key, cursor=cursor, limit=limit
        )
        paged(response, request, page)
        return [task_summary_json(task) for task in page.items]

    @router.get(
        "/{execution_id}/tasks/{task}",
        response_model=schemas.TaskDetail,
        response_class=JsonResponse,
        summary="Read a task with its attempts",
    )
    def get_task(
        execution_id: ExecutionId,
        task: Annotated[str, Path(description="the task's key (or id)")],
        graph: Annotated[
            str | None, Query(description="its graph, if the key is in several")
        ] = None,
        log_limit: Annotated[int, Query(ge=0, le=10_000, description="its last events")] = 500,
    ) -> dict[str, Any]:
        """The task: its arguments, result, every attempt (where, when, outcome, error with
        traceback), when it runs again, and its last events and log lines."""
        return task_detail_json(service.task_by_key(execution_id, task, graph, log_limit))

    return router
