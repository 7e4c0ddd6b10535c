"""A store outage that outlasts the retries is a 503 the client may retry, never a 500."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from dalsegno.api.errors import install_error_handlers
from dalsegno.model.errors import StoreUnavailableError


def test_an_unavailable_store_answers_503_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/probe")
    def probe() -> None:
        raise StoreUnavailableError("PostgreSQL unreachable for 3s: connection refused")

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/probe")

    answer = asyncio.run(ask())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    assert answer.json() == {
        "error": "the store is unavailable: PostgreSQL unreachable for 3s: connection refused"
    }
