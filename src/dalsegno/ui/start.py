"""The start form: the workflows this manager serves, each with a field per parameter.

`/start` offers the allowed workflows (`dalsegno manager --workflows`); choosing one shows
a field for each of its parameters, typed by its annotation (a yes/no choice for a bool,
the choices of a Literal or Enum, a JSON box for a list or an object). A field's text is
read as the CLI reads `-p KEY=VALUE`: as JSON when it parses, else as text, then by the
parameter's annotation; a field left empty takes the default. The POST calls the same
`service.create` as the REST API, with the signed-in person as its actor.

A service that runs any workflow it can import (not a manager: a test's app) shows the
free form instead: a reference and the params as a JSON object.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from dalsegno.model.errors import DalsegnoError, RefusedError
from dalsegno.service.params import run_settings
from dalsegno.service.workflows import AllowedWorkflow
from dalsegno.ui.access import Ui
from dalsegno.ui.sessions import Session

FIELD = "param."  # the form field of a parameter: `param.NAME`


def parse_params(text: str) -> dict[str, Any]:
    """A JSON object typed in a box, with a one-line reason when it is not one."""
    if not text.strip():
        return {}
    try:
        params = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        msg = f"params must be a JSON object: {exc}"
        raise RefusedError(msg) from None
    if not isinstance(params, dict):
        msg = f"params must be a JSON object, not a JSON {type(params).__name__}"
        raise RefusedError(msg)
    return params


def _no_constant(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def fields_to_params(
    workflow: AllowedWorkflow, form: FormData
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The params of the fields filled in, their texts (read by annotation later), and
    every field's text as typed (to show the form again after a refusal)."""
    params: dict[str, Any] = {}
    texts: dict[str, str] = {}
    typed: dict[str, str] = {}
    for parameter in workflow.parameters:
        raw = form.get(FIELD + parameter.name)
        text = raw if isinstance(raw, str) else ""
        typed[parameter.name] = text
        if not text.strip():
            continue  # the default
        try:
            params[parameter.name] = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            params[parameter.name] = text
        texts[parameter.name] = text
    extra = form.get("params")
    if workflow.extra_params and isinstance(extra, str):
        typed["params"] = extra
        for name, value in parse_params(extra).items():
            params.setdefault(name, value)
    return params, texts, typed


def start_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]
    Field = Annotated[str, Form()]

    @router.get("/start")
    def start_form(request: Request, session: SignedIn, workflow: str = "") -> Response:
        ui.check_operator(session)
        return _page(ui, request, session, workflow, {}, "", "", 200)

    @router.post("/start")
    async def start(
        request: Request,
        session: SignedIn,
        csrf: Field = "",
        workflow: Field = "",
        lock: Field = "",
        dry_run: Field = "",
        task_retries: Field = "",
        task_retry_interval: Field = "",
    ) -> Response:
        ui.check_csrf(request, session, csrf)
        ui.check_operator(session)
        form = await request.form()
        typed: dict[str, str] = {}
        how = {"dry_run": dry_run, "task_retries": task_retries, "interval": task_retry_interval}
        try:
            settings = run_settings(bool(dry_run), task_retries, task_retry_interval)
            allowed = ui.service.allowed_workflows()
            if allowed is None:
                raw = form.get("params")
                typed["params"] = raw if isinstance(raw, str) else ""
                params, texts = parse_params(typed["params"]), dict[str, str]()
            else:
                chosen = _chosen(allowed, workflow)
                if chosen is None:
                    msg = f"workflow '{workflow}' is not allowed on this manager"
                    raise RefusedError(msg)
                params, texts, typed = fields_to_params(chosen, form)
            execution = await run_in_threadpool(
                ui.service.create,
                workflow,
                params,
                lock.strip() or None,
                texts,
                actor=session.actor,
                **settings,
            )
        except DalsegnoError as exc:
            return _page(ui, request, session, workflow, typed, lock, str(exc), 400, how)
        ui.on_change()
        return RedirectResponse(f"/executions/{execution.id}", status_code=303)

    return router


def _chosen(allowed: list[AllowedWorkflow], reference: str) -> AllowedWorkflow | None:
    for found in allowed:
        if reference in (found.reference, *found.aliases):
            return found
    return None


def _page(
    ui: Ui,
    request: Request,
    session: Session,
    workflow: str,
    typed: dict[str, str],
    lock: str,
    error: str,
    status: int,
    how: dict[str, str] | None = None,
) -> Response:
    allowed = ui.service.allowed_workflows()
    return ui.pages.render(
        "start.html",
        status,
        session=session,
        request=request,
        allowed=allowed,
        chosen=None if allowed is None else _chosen(allowed, workflow),
        known=ui.service.workflows() if allowed is None else [],
        workflow=workflow,
        typed=typed,
        lock=lock,
        error=error,
        how=how or {},
    )
