"""The execution page: its facts and actions, its graphs, one page of its tasks, its last
events; and the fragments its script asks for.

While the execution runs, htmx fetches the page's live part again every ~1.5 s and swaps
it in, keeping the graphs where they are (`hx-preserve`): the fragment carries the states
of what is drawn, and the page's script (static/graph.js) applies them in place, so the
viewport, the groups expanded and the task selected stay as the person left them.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from dalsegno.model.errors import DalsegnoError, NotFoundError
from dalsegno.model.states import EXECUTION_END_STATES
from dalsegno.ui.access import Ui
from dalsegno.ui.graphs import execution_view, live_state, parse_expand
from dalsegno.ui.sessions import Session


def number(raw: str, default: int, lowest: int = 1, highest: int = 1_000_000) -> int:
    """A query parameter as a whole number in range, else `default` (a page never 422s)."""
    try:
        value = int(raw)
    except ValueError:
        return default
    return min(max(value, lowest), highest)


def task_number(task_id: str) -> int:
    """A task id of a URL, or an unknown task."""
    if not (task_id.isascii() and task_id.isdigit() and len(task_id) <= 18):
        msg = f"unknown task: {task_id}"
        raise NotFoundError(msg)
    return int(task_id)


class ExecutionFilters:
    """The execution page's query: the task table's filters and page, the key searched,
    and the groups expanded (`expand=GRAPH/KEY`, repeated)."""

    def __init__(
        self,
        graph: str = "",
        state: str = "",
        page: str = "1",
        q: str = "",
        expand: Annotated[list[str] | None, Query()] = None,
    ) -> None:
        self.graph, self.state, self.page, self.q = graph, state, page, q[:200]
        self.expand = (expand or [])[:50]


def execution_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]

    def execution_context(
        execution_id: str, filters: ExecutionFilters, *, draw: bool
    ) -> dict[str, Any]:
        execution, graphs = ui.service.graphs(execution_id)
        view = execution_view(
            graphs,
            filters.graph,
            filters.state,
            number(filters.page, 1),
            query=filters.q,
            expand=parse_expand(filters.expand),
            draw=draw,
        )
        status = execution.status.value
        return {
            "execution": execution,
            "view": view,
            "drawn": draw,
            "live_state": live_state(view, graphs, status),
            "actions": ui.service.allowed_actions(execution),
            "asked": ui.service.actions(execution.id),  # who started, resumed, cancelled
            "events": ui.service.last_events(execution.id, 200)[::-1],
            "live": execution.status not in EXECUTION_END_STATES,
        }

    def render_execution(
        template: str,
        request: Request,
        session: Session,
        execution_id: str,
        filters: ExecutionFilters,
        *,
        draw: bool,
    ) -> Response:
        try:
            context = execution_context(execution_id, filters, draw=draw)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(template, session=session, request=request, **context)

    Filters = Annotated[ExecutionFilters, Depends()]

    @router.get("/executions/{execution_id}")
    def execution(
        request: Request, session: SignedIn, execution_id: str, filters: Filters
    ) -> Response:
        return render_execution(
            "execution.html", request, session, execution_id, filters, draw=True
        )

    @router.get("/fragments/executions/{execution_id}")
    def execution_body(
        request: Request, session: SignedIn, execution_id: str, filters: Filters
    ) -> Response:
        """The live part of the execution page, for htmx to swap in: its graphs are kept
        in the page (hx-preserve), and the script applies the states this carries."""
        return render_execution(
            "_execution_body.html", request, session, execution_id, filters, draw=False
        )

    @router.get("/fragments/executions/{execution_id}/graphs")
    def execution_graphs(
        request: Request, session: SignedIn, execution_id: str, filters: Filters
    ) -> Response:
        """The graphs drawn again: a group expanded or collapsed, or a graph appeared."""
        return render_execution("_graphs.html", request, session, execution_id, filters, draw=True)

    @router.get("/fragments/executions/{execution_id}/tasks/{task_id}")
    def task_summary(
        request: Request, session: SignedIn, execution_id: str, task_id: str
    ) -> Response:
        """The selected task, beside the graph."""
        try:
            detail = ui.service.task_detail(execution_id, task_number(task_id), log_limit=0)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(
            "_task_summary.html", session=session, request=request, detail=detail
        )

    return router
