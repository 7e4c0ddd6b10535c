"""`/healthz`, `/readyz` and `/metrics`: the manager as a service, for load balancers,
orchestrators and Prometheus. None of them needs a token: they carry no execution's data
(counts by state, timings), and a probe has no token to give.

- `GET /healthz`: 200 while the process serves HTTP (liveness).
- `GET /readyz`: 200 when the store answers and its schema is current, 503 with the reason
  otherwise (readiness: take the manager out of rotation, do not restart it).
- `GET /metrics`: Prometheus' text format (`dalsegno.service.metrics`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dalsegno.api.errors import JsonResponse
from dalsegno.service.health import ReadinessCheck
from dalsegno.service.metrics import Metrics

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def health_router(readiness: ReadinessCheck, metrics: Metrics) -> APIRouter:
    router = APIRouter(include_in_schema=False)  # not the REST API: probes and Prometheus

    @router.get("/healthz", summary="Liveness: the process serves HTTP")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: the store answers and its schema is current",
        responses={503: {"description": "Not ready, with the reason."}},
    )
    async def readyz() -> Response:
        found = await run_in_threadpool(readiness.check)
        body = {"ready": found.ready, "reason": found.reason, "schema": found.schema}
        return JsonResponse(body, status_code=200 if found.ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        text = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return router
