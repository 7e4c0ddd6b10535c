"""The pages that show executions: the list, one execution, one task.

The list and a running execution's page refresh themselves: htmx fetches their fragment
again every ~1.5 s and swaps it in; an execution's fragment stops asking once it ended.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dalsegno.model.errors import DalsegnoError, NotFoundError
from dalsegno.model.states import EXECUTION_END_STATES
from dalsegno.ui.access import Ui
from dalsegno.ui.graphs import execution_view
from dalsegno.ui.sessions import Session

LIST_LIMITS = (50, 100, 500, 1000)


def number(raw: str, default: int, lowest: int = 1, highest: int = 1_000_000) -> int:
    """A query parameter as a whole number in range, else `default` (a page never 422s)."""
    try:
        value = int(raw)
    except ValueError:
        return default
    return min(max(value, lowest), highest)


def pages_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]

    def executions_context(status: str, workflow: str, limit: str) -> dict[str, Any]:
        shown = number(limit, 100, 1, max(LIST_LIMITS))
        return {
            "summaries": ui.service.overview(status or None, workflow or None, shown),
            "workflows": ui.service.workflows(),
            "status": status,
            "workflow": workflow,
            "limit": shown,
            "limits": LIST_LIMITS,
        }

    @router.get("/")
    def executions(
        request: Request,
        session: SignedIn,
        status: str = "",
        workflow: str = "",
        limit: str = "100",
    ) -> Response:
        try:
            context = executions_context(status, workflow, limit)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render("executions.html", session=session, request=request, **context)

    @router.get("/fragments/executions")
    def executions_table(
        request: Request,
        session: SignedIn,
        status: str = "",
        workflow: str = "",
        limit: str = "100",
    ) -> Response:
        try:
            context = executions_context(status, workflow, limit)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(
            "_executions_table.html", session=session, request=request, **context
        )

    def execution_context(execution_id: str, graph: str, state: str, page: str) -> dict[str, Any]:
        execution, graphs = ui.service.graphs(execution_id)
        view = execution_view(graphs, graph, state, number(page, 1))
        return {
            "execution": execution,
            "view": view,
            "actions": ui.service.allowed_actions(execution),
            "events": ui.service.last_events(execution.id, 200)[::-1],
            "live": execution.status not in EXECUTION_END_STATES,
        }

    def render_execution(
        template: str, request: Request, session: Session, execution_id: str, *view: str
    ) -> Response:
        try:
            context = execution_context(execution_id, *view)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(template, session=session, request=request, **context)

    @router.get("/executions/{execution_id}")
    def execution(
        request: Request,
        session: SignedIn,
        execution_id: str,
        graph: str = "",
        state: str = "",
        page: str = "1",
    ) -> Response:
        return render_execution(
            "execution.html", request, session, execution_id, graph, state, page
        )

    @router.get("/fragments/executions/{execution_id}")
    def execution_body(
        request: Request,
        session: SignedIn,
        execution_id: str,
        graph: str = "",
        state: str = "",
        page: str = "1",
    ) -> Response:
        """The live part of the execution page, for htmx to swap in."""
        return render_execution(
            "_execution_body.html", request, session, execution_id, graph, state, page
        )

    @router.get("/executions/{execution_id}/tasks/{task_id}")
    def task(request: Request, session: SignedIn, execution_id: str, task_id: str) -> Response:
        try:
            if not (task_id.isascii() and task_id.isdigit() and len(task_id) <= 18):
                msg = f"unknown task: {task_id}"
                raise NotFoundError(msg)
            detail = ui.service.task_detail(execution_id, int(task_id))
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(
            "task.html",
            session=session,
            request=request,
            execution_id=detail.task.execution_id,
            detail=detail,
        )

    return router
