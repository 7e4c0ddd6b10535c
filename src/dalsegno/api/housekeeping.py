"""Housekeeping over REST (admin): `DELETE /executions/{id}` and `POST /housekeeping/purge`.

An execution that has not ended is refused with 409; its rows go in bounded batches, so
running executions go on between them (`dalsegno.service.housekeeping`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import Field

from dalsegno.api import schemas
from dalsegno.api.auth import MANAGE, require
from dalsegno.api.errors import JsonResponse, responses
from dalsegno.api.paging import known_query_only
from dalsegno.service import ExecutionService
from dalsegno.service.views import purge_json

ExecutionId = Annotated[str, Path(description="an execution id, or a unique prefix of one")]


class PurgeRequest(schemas.Request):
    """Delete the ended executions in `status` that ended before `before`."""

    status: list[str] = Field(min_length=1, description="completed, failed and/or cancelled")
    before: str = Field(description="an age (30d, 12h, 90m) or an ISO 8601 time")
    keep_last: int = Field(default=0, ge=0, description="the newest of each workflow to keep")
    dry_run: bool = Field(default=False, description="say what would go; delete nothing")


class Deleted(schemas.Answer):
    id: str
    tasks: int
    events: int


class Purged(schemas.Answer):
    dry_run: bool
    executions: int
    tasks: int
    events: int
    skipped: int = Field(description="chosen, but resumed or deleted by someone else meanwhile")
    ids: list[str] = Field(description="the executions (the first 1,000)")


def housekeeping_router(service: ExecutionService) -> APIRouter:
    router = APIRouter(
        tags=["housekeeping"],
        dependencies=[Depends(require(MANAGE)), Depends(known_query_only)],
        responses=responses(401, 403, 422),
    )

    @router.post(
        "/housekeeping/purge",
        response_model=Purged,
        response_class=JsonResponse,
        responses=responses(400),
        summary="Purge old ended executions",
    )
    def purge(body: PurgeRequest) -> dict[str, Any]:
        """Delete the ended executions of these states that ended before `before`, keeping
        the newest `keep_last` of each workflow; with `dry_run`, only say which."""
        return purge_json(service.purge(body.status, body.before, body.keep_last, body.dry_run))

    @router.delete(
        "/executions/{execution_id}",
        response_model=Deleted,
        response_class=JsonResponse,
        responses=responses(404, 409),
        summary="Delete an ended execution",
    )
    def delete_execution(execution_id: ExecutionId) -> dict[str, Any]:
        """Delete an ended execution with its graphs, tasks, attempts and events."""
        execution = service.find(execution_id)
        removed = service.delete(execution.id)
        return {"id": execution.id, "tasks": removed.tasks, "events": removed.events}

    return router
