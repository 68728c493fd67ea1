"""The FastAPI application: its parts, the error answers, and the routers.

``uvicorn app.main:app`` serves it (``vae-serve`` adds connection limits); ``create_app``
builds one for tests, optionally with another model loader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app import metrics
from app.admission import Admission, Overloaded
from app.batching import InvalidInput
from app.config import Settings, get_settings
from app.connections import ConnectionGuard
from app.deps import Runtime
from app.lifecycle import Loader, ServedModel, Unavailable, VersionNotFound
from app.responses import json_response
from app.routes import digits, explore, health, models, pages
from app.tfserving import TFServingError
from app.uploads import UploadDecoder

log = logging.getLogger("app")

TF_SERVING_PREFIX = "/v1/models/"
DESCRIPTION = """
A variational autoencoder trained on MNIST. Generate handwritten digits from random latent
codes (optionally a chosen digit), decode your own codes, or encode digit images into the
posterior's μ and σ.

Images are 28×28 greyscale PNGs, white digit on black. `generate` and `decode` answer JSON
(base64 PNGs) by default, one PNG (a digit, or a grid) with `Accept: image/png`, or raw
uint8 pixels with `Accept: application/x-npy`. The model is also served with TensorFlow
Serving's REST API under `/v1/models/vae`.
"""


def create_app(settings: Settings | None = None, load: Loader | None = None) -> FastAPI:
    """A new application; ``settings`` default to the environment's, ``load`` to loading
    SavedModels with TensorFlow."""
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime = Runtime(
        settings=settings,
        served=ServedModel(settings, load),
        admission=Admission(settings.max_queue_rows, settings.request_timeout),
        uploads=UploadDecoder(
            settings.max_image_pixels, settings.decode_concurrency, settings.decode_memory_bytes
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.served.start()
        try:
            yield
        finally:
            await runtime.served.stop()
            metrics.worker_exited(os.getpid())

    app = FastAPI(
        title="VAE digits",
        version="2.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would be built from the client's Host header
        docs_url=None,  # served by app.routes.pages from vendored files, not from a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry looks up three global providers on every request
        # (3-10 µs); Prometheus metrics (/metrics) are this service's instrumentation.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.add_middleware(
        ConnectionGuard,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_bytes=settings.max_json_bytes,
        body_timeout=settings.body_timeout,
    )
    app.add_middleware(metrics.MetricsMiddleware)
    add_error_handlers(app)
    for router in (digits.router, models.router, health.router, explore.router):
        app.include_router(router)
    for uploads in (digits.upload_router, explore.upload_router):
        # Multipart: at most VAE_MAX_BATCH files, and a few small fields beside them.
        app.include_router(
            uploads,
            form_limits={"max_files": settings.max_batch, "max_fields": 8, "max_part_size": 65536},
        )
    app.include_router(pages.router)
    pages.mount_static(app)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON ``{"detail": ...}`` with the right status, never a 500 page."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # loc/msg/type only: echoing the input could hold NaN, which JSON cannot carry.
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return json_response({"detail": detail}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        headers = getattr(error, "headers", None)
        if request.url.path.startswith(TF_SERVING_PREFIX):  # TensorFlow Serving's error format
            message = (
                f"Malformed request: {request.method} {request.url.path}"
                if error.status_code == 404
                else str(error.detail)
            )
            return json_response({"error": message}, error.status_code, headers)
        return json_response({"detail": error.detail}, error.status_code, headers)

    @app.exception_handler(TFServingError)
    async def tf_serving_error(request: Request, error: TFServingError) -> Response:
        return json_response({"error": error.message}, error.status, error.headers)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> Response:
        return json_response(
            {"detail": error.message}, 503, {"Retry-After": str(error.retry_after)}
        )

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, error: Unavailable) -> Response:
        return json_response({"detail": error.message}, 503, {"Retry-After": "5"})

    @app.exception_handler(VersionNotFound)
    async def version_not_found(request: Request, error: VersionNotFound) -> Response:
        return json_response({"detail": error.message}, 404)

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, error: InvalidInput) -> Response:
        return json_response({"detail": error.message}, 422)


app = create_app()
