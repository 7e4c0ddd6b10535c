"""Security headers on every answer of the manager, and the API's docs page under them.

No page of the manager may be framed (`X-Frame-Options: DENY`, CSP `frame-ancestors
'none'`): a page elsewhere cannot overlay the web UI and steer a click onto Kill. The web
UI's pages run scripts from this site only (htmx and the pages' scripts are vendored; no
inline script,
no eval); styles may be inline (the progress bars' widths). JSON answers may load nothing.
The OpenAPI docs page (Swagger UI, from its CDN) gets its own policy: its scripts and
styles from that CDN, and its one inline script by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGES_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'; object-src 'none'"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
SWAGGER_CDN = "https://cdn.jsdelivr.net"
COMMON = {
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"cross-origin-opener-policy": b"same-origin",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


class SecurityHeaders:
    """ASGI middleware: the common headers, and a CSP unless the answer set its own."""

    def __init__(self, app: ASGIApp, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix.rstrip("/") + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        policy = (API_POLICY if path.startswith(self.api_prefix) else PAGES_POLICY).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in COMMON.items() if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def docs_page(openapi_url: str, title: str) -> Callable[[Request], Awaitable[HTMLResponse]]:
    """The Swagger UI page FastAPI would serve, with a policy that admits exactly it."""

    async def page(_: Request) -> HTMLResponse:
        html = get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI")
        body = bytes(html.body).decode()
        hashes = " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
            for script in _INLINE_SCRIPT.findall(body)
        )
        policy = (
            f"default-src 'none'; script-src {SWAGGER_CDN} {hashes}; style-src {SWAGGER_CDN};"
            f" img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self';"
            " frame-ancestors 'none'; base-uri 'none'"
        )
        return HTMLResponse(body, headers={"Content-Security-Policy": policy})

    return page
