"""`/workflows`: the workflows this manager serves (`dalsegno manager --workflows`), with
their parameters as their signatures say, for people and for the web UI's start form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, JsonValue

from dalsegno.api.auth import READ, require
from dalsegno.api.errors import JsonResponse, responses
from dalsegno.service import ExecutionService
from dalsegno.service.workflows import workflow_json


class Parameter(BaseModel):
    name: str
    type: str | None = Field(
        description="boolean, integer, number, string, array, object; null: any JSON value"
    )
    annotation: str | None = Field(description="the annotation as written, or null")
    description: str
    required: bool
    default: JsonValue = Field(description="the default (its repr when it is not JSON)")
    choices: list[JsonValue] | None = Field(description="the values a Literal or Enum takes")
    nullable: bool


class Workflow(BaseModel):
    workflow: str = Field(description="the reference to start it with")
    aliases: list[str] = Field(description="other references naming the same workflow")
    name: str
    resumable: bool
    task_retries: int | None = Field(
        None, description="`@workflow(task_retries=...)`: for executions that set none"
    )
    task_retry_interval: float | None = Field(
        None, description="`@workflow(task_retry_interval=...)`: for executions that set none"
    )
    doc: str = Field(description="the first paragraph of its docstring")
    source: str = Field(description="the module or file it was imported from")
    extra_params: bool = Field(description="it takes **kwargs: other names are accepted too")
    parameters: list[Parameter]


def workflows_router(service: ExecutionService) -> APIRouter:
    router = APIRouter(
        prefix="/workflows",
        tags=["workflows"],
        dependencies=[Depends(require(READ))],
        responses=responses(401, 403, 422),
    )

    @router.get(
        "", response_model=list[Workflow], response_class=JsonResponse, summary="List workflows"
    )
    def list_workflows() -> list[dict[str, Any]]:
        """The workflows this manager serves, by reference; it refuses to start any other."""
        return [workflow_json(found) for found in service.allowed_workflows() or []]

    return router
