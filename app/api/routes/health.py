"""Liveness, readiness and Prometheus metrics: never queued behind inference."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from app import metrics
from app.api.deps import ServedDep
from app.api.schemas import Problem
from app.serving.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (whether or not a model is loaded)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Problem, "description": "No model loaded yet"}})
async def readyz(served: ServedDep) -> Any:
    """Readiness: 200 once a model version is loaded and warm, 503 (saying why) until then."""
    if not served.ready:
        raise Unavailable(f"model not ready: {served.why_not_ready}")
    servable = served.get()
    return {
        "status": "ready",
        "version": servable.version,
        "device": "GPU" if "GPU" in servable.model.device.upper() else "CPU",
    }


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus text format: every worker process's values added up."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
