"""The agents page: each queue with the tasks that wait for an agent and those held, each
agent with its host, last heartbeat and the tasks it holds; an agent silent for longer
than the heartbeat timeout is marked lost (its attempts are given up). Read only: it asks
the service what the CLI's `dalsegno agents list` asks."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name aliases local to the function that builds the router.

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dalsegno.model.errors import DalsegnoError
from dalsegno.ui.access import Ui
from dalsegno.ui.sessions import Session


def agents_router(ui: Ui) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    SignedIn = Annotated[Session, Depends(ui.signed_in)]

    @router.get("/agents")
    def agents(request: Request, session: SignedIn) -> Response:
        try:
            view = ui.service.agents_overview()
        except DalsegnoError as exc:
            return ui.refusal(request, session, exc)
        queues = sorted({agent.queue for agent in view.agents} | set(view.queues))
        return ui.pages.render(
            "agents.html",
            session=session,
            request=request,
            view=view,
            queues=queues,
            now=time.time(),
        )

    return router
