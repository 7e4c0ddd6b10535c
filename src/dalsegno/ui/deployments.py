"""The deployments pages: the list, and one deployment with its node instances (state,
runtime properties), the picture of their relationships and its executions; and its
actions, install, uninstall, heal (an instance) and scale (a node by a delta), each a
confirmation page first, then a POST with the CSRF token that starts the built-in
workflow (`dalsegno.lifecycle`) as the REST API's start does, and goes to the execution.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dalsegno.model.errors import DalsegnoError, NotFoundError, RefusedError
from dalsegno.service.deployment_calls import DeploymentCalls, workflow_of
from dalsegno.service.deployment_views import state_counts
from dalsegno.ui.access import Ui
from dalsegno.ui.instances import instance_picture
from dalsegno.ui.sessions import Session

ACTIONS = {
    "install": (
        "Install",
        "Create, configure and start every instance not started yet, each after the "
        "instances it has a relationship to.",
    ),
    "uninstall": (
        "Uninstall",
        "Stop, unlink and delete every instance, in the reverse order; failures are ignored.",
    ),
    "heal": (
        "Heal",
        "Uninstall then install this instance and those contained in it, with their "
        "relationships established again.",
    ),
    "scale": (
        "Scale",
        "Add instances of the node (installed, with their contained ones and relationships), "
        "or remove some (uninstalled); the deployment keeps the new count.",
    ),
}


def action_params(action: str, instance: str, node: str, delta: str) -> dict[str, Any]:
    """The workflow's params of an action, from the form's texts."""
    if action not in ACTIONS:
        msg = f"unknown action {action!r}: use install, uninstall, heal or scale"
        raise NotFoundError(msg)
    if action == "heal":
        if not instance.strip():
            msg = "heal needs an instance"
            raise RefusedError(msg)
        return {"instance": instance.strip()}
    if action == "scale":
        try:
            count = int(delta.strip())
        except ValueError:
            msg = f"the delta must be a whole number (+N adds, -N removes), not {delta!r}"
            raise RefusedError(msg) from None
        if count == 0 or not node.strip():
            msg = "scale needs a node and a delta other than 0"
            raise RefusedError(msg)
        return {"node": node.strip(), "delta": count}
    return {}


def deployments_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]
    Field = Annotated[str, Form()]

    def calls() -> DeploymentCalls:
        return DeploymentCalls(ui.service.store, ui.service.served_operations())

    @router.get("/deployments")
    def deployments(request: Request, session: SignedIn) -> Response:
        try:
            found = calls().deployments()
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        rows = [(record, state_counts(instances), len(instances)) for record, instances in found]
        return ui.pages.render("deployments.html", session=session, request=request, rows=rows)

    @router.get("/deployments/{deployment_id}")
    def deployment(request: Request, session: SignedIn, deployment_id: str) -> Response:
        try:
            record, instances = calls().deployment(deployment_id)
            executions = calls().executions(record.id)
            blueprint = calls().blueprint(record.blueprint_id).blueprint
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(
            "deployment.html",
            session=session,
            request=request,
            deployment=record,
            instances=instances,
            counts=state_counts(instances),
            picture=instance_picture(instances),
            executions=executions[:50],
            nodes=[name for name in blueprint.node_templates],
        )

    @router.get("/deployments/{deployment_id}/{action}")
    def confirm(
        request: Request,
        session: SignedIn,
        deployment_id: str,
        action: str,
        instance: str = "",
        node: str = "",
        delta: str = "",
    ) -> Response:
        ui.check_operator(session)
        try:
            params = action_params(action, instance, node, delta)
            record, instances = calls().deployment(deployment_id)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        title, meaning = ACTIONS[action]
        return ui.pages.render(
            "deployment_action.html",
            session=session,
            request=request,
            deployment=record,
            action=action,
            title=title,
            meaning=meaning,
            params=params,
            counts=state_counts(instances),
        )

    @router.post("/deployments/{deployment_id}/{action}")
    async def start(
        request: Request,
        session: SignedIn,
        deployment_id: str,
        action: str,
        csrf: Field = "",
        instance: Field = "",
        node: Field = "",
        delta: Field = "",
    ) -> Response:
        ui.check_csrf(request, session, csrf)
        ui.check_operator(session)
        try:
            params = action_params(action, instance, node, delta)
            record, _ = await run_in_threadpool(calls().deployment, deployment_id)
            start = partial(
                ui.service.create,
                workflow_of(action, record.id),
                params,
                actor=session.actor,
                deployment=record.id,
            )
            execution = await run_in_threadpool(start)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        ui.on_change()
        return RedirectResponse(f"/executions/{execution.id}", status_code=303)

    return router
