"""The access log (`dalsegno manager --access-log`): one INFO line per HTTP request on the
`dalsegno.access` logger, with its method, path, status, duration and client.

The query string is left out (a path is enough to tell requests apart, and a query may
carry what a person typed into a search box); headers, tokens and bodies never appear.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("dalsegno.access")


class AccessLog:
    """ASGI middleware: logs each HTTP request when its answer has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]  # an app that fails before answering is answered 500 by the server

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client: Any = scope.get("client")
            fields = {
                "status": status[0],
                "duration_ms": round((time.perf_counter() - began) * 1000, 1),
                "client": f"{client[0]}:{client[1]}" if client else "-",
            }
            log.info("%s %s", scope.get("method", ""), scope.get("path", ""), extra=fields)
