"""What a person asks of an execution from the browser: resume, cancel (the start form is
`dalsegno.ui.start`).

Each action is a page first (the resume's dry-run plan, a cancel's confirmation), then a
POST carrying the CSRF token, answered by a redirect to the execution. Both need the
operator role. The POSTs call the same `ExecutionService` methods as the REST API, with the
signed-in person as the actor, and wake the manager.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from dalsegno.model.errors import DalsegnoError, RefusedError
from dalsegno.service.executions import CANCEL_TARGETS
from dalsegno.ui.access import Ui
from dalsegno.ui.sessions import Session

PLAN_ROWS = 500  # tasks listed on the resume page; the counts cover them all

CANCEL_MODES = {
    "cancel": (
        "Cancel",
        "No new task starts; the tasks running now are awaited, then the execution ends cancelled.",
    ),
    "force": (
        "Force cancel",
        "Stop now: running operations are left to end alone and their results are ignored.",
    ),
    "kill": (
        "Kill",
        "Stop now: running tasks fail with \u201ckilled by cancel\u201d. An operation declared "
        "@operation(process=True) runs in a child process, which is stopped (SIGTERM, then "
        "SIGKILL after 5 s). Any other operation runs in a thread, which cannot be stopped: "
        "it is abandoned \u2014 it goes on until it returns by itself, and its result is "
        "ignored. The same holds on agents. Pending tasks stay pending: a resume runs them.",
    ),
}


def actions_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]
    Field = Annotated[str, Form()]

    def back_to(execution_id: str) -> Response:
        return RedirectResponse(f"/executions/{execution_id}", status_code=303)

    @router.get("/executions/{execution_id}/resume")
    def resume_plan(
        request: Request, session: SignedIn, execution_id: str, reset_operations: str = ""
    ) -> Response:
        ui.check_operator(session)
        reset = reset_operations == "1"
        try:
            plan = ui.service.plan(execution_id, reset)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        return ui.pages.render(
            "resume.html",
            session=session,
            request=request,
            plan=plan,
            counts=plan.counts(),
            rows=plan.tasks[:PLAN_ROWS],
            reset=reset,
        )

    @router.post("/executions/{execution_id}/resume")
    def resume(
        request: Request,
        session: SignedIn,
        execution_id: str,
        csrf: Field = "",
        reset_operations: Field = "",
    ) -> Response:
        ui.check_csrf(request, session, csrf)
        ui.check_operator(session)
        try:
            execution = ui.service.hand_over_resume(
                execution_id, reset_operations == "1", actor=session.actor
            )
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        ui.on_change()
        return back_to(execution.id)

    @router.get("/executions/{execution_id}/cancel")
    def cancel_confirm(
        request: Request, session: SignedIn, execution_id: str, mode: str = "cancel"
    ) -> Response:
        ui.check_operator(session)
        try:
            if mode not in CANCEL_MODES:
                msg = f"unknown cancel mode {mode!r}: use cancel, force or kill"
                raise RefusedError(msg)
            execution = ui.service.find(execution_id)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        title, meaning = CANCEL_MODES[mode]
        return ui.pages.render(
            "cancel.html",
            session=session,
            request=request,
            execution=execution,
            mode=mode,
            title=title,
            meaning=meaning,
            allowed=mode in ui.service.allowed_actions(execution),
            target=CANCEL_TARGETS[mode].value,
            counts=ui.service.task_counts(execution.id),
        )

    @router.post("/executions/{execution_id}/cancel")
    def cancel(
        request: Request,
        session: SignedIn,
        execution_id: str,
        csrf: Field = "",
        mode: Field = "cancel",
    ) -> Response:
        ui.check_csrf(request, session, csrf)
        ui.check_operator(session)
        try:
            execution = ui.service.cancel(execution_id, mode, actor=session.actor)
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        ui.on_change()
        return back_to(execution.id)

    return router
