"""`/blueprints` and `/deployments`: upload, list, read and delete blueprints; create,
list, read (with node instances) and delete deployments (docs/blueprints.md).

Thin handlers over `DeploymentCalls`, the ones the CLI makes: reads for viewers, writes
for operators. A blueprint is uploaded as a JSON body `{"id", "source"}`, `source` its
YAML text; its refusals name the line and field (422), and nothing is stored.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from dalsegno.api.auth import OPERATE, READ, require
from dalsegno.api.errors import JsonResponse, responses
from dalsegno.api.paging import known_query_only
from dalsegno.api.schemas import Request, Timestamp
from dalsegno.model.errors import RefusedError
from dalsegno.model.names import ID_PATTERN
from dalsegno.service import ExecutionService
from dalsegno.service.deployment_calls import MAX_BLUEPRINT, DeploymentCalls
from dalsegno.service.deployment_views import blueprint_json, deployment_json

Id = Annotated[str, Field(pattern=ID_PATTERN, description="letters, digits, '_', '.', '-'")]
BlueprintId = Annotated[str, Path(pattern=ID_PATTERN, description="a blueprint's id")]
DeploymentId = Annotated[str, Path(pattern=ID_PATTERN, description="a deployment's id")]


class UploadRequest(Request):
    """A blueprint's YAML text, stored as `id` once it is valid."""

    id: Id
    source: str = Field(max_length=MAX_BLUEPRINT, description="the blueprint, as YAML text")
    name: str = Field(
        "blueprint.yaml",
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the file name its errors are reported against",
    )
    base_dir: str | None = Field(
        None,
        max_length=4096,
        pattern=r"^/[^\x00]*$",
        description="the absolute directory, on the manager's host, that relative operation "
        "paths (`path/file.py:function`) are read from; default the manager's working "
        "directory. Whatever a reference resolves to must be an operation the manager serves",
    )


class CreateRequest(Request):
    """A deployment of a blueprint with its inputs: JSON values (`inputs`), or command-line
    texts read by each input's type (`input_texts`)."""

    id: Id
    blueprint_id: Id
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    input_texts: dict[str, str] = Field(
        default_factory=dict, description="`-i KEY=VALUE` texts, read by the input's type"
    )


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Blueprint(Answer):
    id: str
    description: str
    created_at: Timestamp
    inputs: list[dict[str, Any]] = Field(description="name, type, description, default")
    node_templates: list[str] = Field(description="the templates' names, in the file's order")


class BlueprintWithSource(Blueprint):
    source: str = Field(description="the YAML as uploaded")
    plan: dict[str, Any] = Field(description="the parsed blueprint, as JSON")


class Link(Answer):
    type: str = Field(description="depends_on, connected_to or contained_in")
    target_node: str
    target_id: str


class Instance(Answer):
    id: str = Field(description="`<node>_<6 hex>`, stable")
    node: str
    state: str = Field(description="uninitialized, creating, created ... started ... deleted")
    runtime_properties: dict[str, Any]
    links: list[Link]
    host_id: str | None = Field(description="the instance it is contained in")
    version: int
    created_at: Timestamp
    updated_at: Timestamp


class Deployment(Answer):
    id: str
    blueprint_id: str
    inputs: dict[str, Any] = Field(description="given values, then the blueprint's defaults")
    created_at: Timestamp
    lock: str = Field(description="the lock key every execution against it takes")
    instance_states: dict[str, int] = Field(description="how many instances in each state")


class DeploymentWithInstances(Deployment):
    instances: list[Instance]


class Deleted(Answer):
    id: str
    deleted: bool


def deployments_router(service: ExecutionService) -> APIRouter:
    """The blueprint and deployment routes over the service's store."""
    router = APIRouter(dependencies=[Depends(known_query_only)], responses=responses(401, 403, 422))
    reads, writes = [Depends(require(READ))], [Depends(require(OPERATE))]

    def calls() -> DeploymentCalls:
        return DeploymentCalls(service.store, service.served_operations())

    @router.post(
        "/blueprints",
        status_code=201,
        tags=["blueprints"],
        response_model=BlueprintWithSource,
        response_class=JsonResponse,
        responses=responses(400, 409),
        dependencies=writes,
        summary="Upload a blueprint",
    )
    def upload_blueprint(upload: UploadRequest) -> dict[str, Any]:
        """Validate the YAML `source` and store it as `id` (409 when the id is taken)."""
        base_dir = FilePath(upload.base_dir) if upload.base_dir else None
        record = calls().upload(upload.source, upload.id, name=upload.name, base_dir=base_dir)
        return blueprint_json(record, full=True)

    @router.get(
        "/blueprints",
        tags=["blueprints"],
        response_model=list[Blueprint],
        response_class=JsonResponse,
        dependencies=reads,
        summary="List blueprints",
    )
    def list_blueprints() -> list[dict[str, Any]]:
        """Every blueprint, by id."""
        return [blueprint_json(record) for record in calls().blueprints()]

    @router.get(
        "/blueprints/{blueprint_id}",
        tags=["blueprints"],
        response_model=BlueprintWithSource,
        response_class=JsonResponse,
        responses=responses(404),
        dependencies=reads,
        summary="Read a blueprint",
    )
    def get_blueprint(blueprint_id: BlueprintId) -> dict[str, Any]:
        """One blueprint with its YAML source and its parsed form."""
        return blueprint_json(calls().blueprint(blueprint_id), full=True)

    @router.delete(
        "/blueprints/{blueprint_id}",
        tags=["blueprints"],
        response_model=Deleted,
        response_class=JsonResponse,
        responses=responses(404, 409),
        dependencies=writes,
        summary="Delete a blueprint",
    )
    def delete_blueprint(blueprint_id: BlueprintId) -> dict[str, Any]:
        """Delete a blueprint; 409 while a deployment uses it."""
        calls().delete_blueprint(blueprint_id)
        return {"id": blueprint_id, "deleted": True}

    @router.post(
        "/deployments",
        status_code=201,
        tags=["deployments"],
        response_model=DeploymentWithInstances,
        response_class=JsonResponse,
        responses=responses(400, 404, 409),
        dependencies=writes,
        summary="Create a deployment",
    )
    def create_deployment(create: CreateRequest) -> dict[str, Any]:
        """A deployment of the blueprint, with all its node instances `uninitialized`."""
        if create.inputs and create.input_texts:
            msg = "give inputs or input_texts, not both"
            raise RefusedError(msg)
        texts = bool(create.input_texts)
        given = create.input_texts if texts else create.inputs
        record, instances = calls().create(create.id, create.blueprint_id, given, from_text=texts)
        return deployment_json(record, instances, with_instances=True)

    @router.get(
        "/deployments",
        tags=["deployments"],
        response_model=list[Deployment],
        response_class=JsonResponse,
        dependencies=reads,
        summary="List deployments",
    )
    def list_deployments() -> list[dict[str, Any]]:
        """Every deployment, by id, with how many instances are in each state."""
        return [deployment_json(record, instances) for record, instances in calls().deployments()]

    @router.get(
        "/deployments/{deployment_id}",
        tags=["deployments"],
        response_model=DeploymentWithInstances,
        response_class=JsonResponse,
        responses=responses(404),
        dependencies=reads,
        summary="Read a deployment",
    )
    def get_deployment(deployment_id: DeploymentId) -> dict[str, Any]:
        """One deployment with each node instance: state, runtime properties, links."""
        record, instances = calls().deployment(deployment_id)
        return deployment_json(record, instances, with_instances=True)

    @router.delete(
        "/deployments/{deployment_id}",
        tags=["deployments"],
        response_model=Deleted,
        response_class=JsonResponse,
        responses=responses(404, 409),
        dependencies=writes,
        summary="Delete a deployment",
    )
    def delete_deployment(
        deployment_id: DeploymentId,
        force: Annotated[bool, Query(description="even while instances are not deleted")] = False,
    ) -> dict[str, Any]:
        """Delete a deployment and its instances; 409 while an execution of it is active,
        or (without `force`) while any instance is not `deleted`."""
        calls().delete(deployment_id, force)
        return {"id": deployment_id, "deleted": True}

    return router
