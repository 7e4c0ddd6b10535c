"""The pages that show executions: the list and one task (the execution page is
`dalsegno.ui.execution`).

The list refreshes itself: htmx fetches its fragment again every ~1.5 s and swaps it in.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dalsegno.model.errors import DalsegnoError
from dalsegno.ui.access import Ui
from dalsegno.ui.execution import number, task_number
from dalsegno.ui.sessions import Session

LIST_LIMITS = (50, 100, 500, 1000)


def pages_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]

    def executions_context(status: str, workflow: str, limit: str, q: str) -> dict[str, Any]:
        shown = number(limit, 100, 1, max(LIST_LIMITS))
        q = q.strip()[:200]
        return {
            "summaries": ui.service.overview(status or None, workflow or None, shown, q),
            "workflows": ui.service.workflows(),
            "status": status,
            "workflow": workflow,
            "limit": shown,
            "limits": LIST_LIMITS,
            "q": q,
        }

    @router.get("/")
    def executions(
        request: Request,
        session: SignedIn,
        status: str = "",
        workflow: str = "",
        limit: str = "100",
        q: str = "",
    ) -> Response:
        try:
            context = executions_context(status, workflow, limit, q)
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
        q: str = "",
    ) -> Response:
        try:
            context = executions_context(status, workflow, limit, q)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(
            "_executions_table.html", session=session, request=request, **context
        )

    @router.get("/executions/{execution_id}/tasks/{task_id}")
    def task(request: Request, session: SignedIn, execution_id: str, task_id: str) -> Response:
        try:
            detail = ui.service.task_detail(execution_id, task_number(task_id))
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
