"""The FastAPI application: the runtime's owners, the middleware, the error answers, the routers.

``uvicorn app.main:app`` serves it (``vae-serve`` adds connection limits and workers);
``create_app`` builds one for tests, optionally with another model loader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app import metrics
from app.api import openapi
from app.api.deps import Runtime
from app.api.errors import add_error_handlers
from app.api.routes import digits, explore, health, model, pages, report, tfserving, v2
from app.api.security import require_key
from app.config import Settings, get_settings
from app.edge.api_keys import ApiKeys
from app.edge.clients import Clients
from app.edge.request_guard import RequestGuard
from app.edge.request_metrics import MetricsMiddleware
from app.media.uploads import UploadReader
from app.serving.admission import Admission
from app.serving.lifecycle import ServedModel
from app.serving.loader import tensorflow_loader
from app.serving.model import Loader

DESCRIPTION = """
A variational autoencoder trained on MNIST. Generate handwritten digits from random latent
codes (optionally a chosen digit), decode your own codes, or encode digit images into the
posterior's μ and σ.

Images are 28×28 greyscale PNGs, white digit on black. `generate` and `decode` answer JSON
(base64 PNGs) by default, one PNG (a digit, or a grid) with `Accept: image/png`, or raw
uint8 pixels with `Accept: application/x-npy`. The model is also served with TensorFlow
Serving's REST API under `/v1/models/vae`, and with the Open Inference Protocol (v2, KServe's
and Triton's) under `/v2`.
"""


def create_app(settings: Settings | None = None, load: Loader | None = None) -> FastAPI:
    """A new application; ``settings`` default to the environment's, ``load`` to loading
    SavedModels with TensorFlow."""
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    keys = ApiKeys(settings.api_keys_file) if settings.api_keys_file else None
    runtime = Runtime(
        settings=settings,
        served=ServedModel(settings, load or tensorflow_loader(settings)),
        admission=Admission(
            settings.max_queue_rows, settings.request_timeout, settings.queue_rows_per_client
        ),
        uploads=UploadReader(
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
        docs_url=None,  # served by app.api.routes.pages from vendored files, not from a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry looks up three global providers on every request
        # (3-10 µs); Prometheus metrics (/metrics) are this service's instrumentation.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    # Outermost last: metrics see every answer; the guard closes a connection whose body the
    # client limits left unread.
    app.add_middleware(
        Clients,
        keys=keys,
        metrics_keys=frozenset(filter(None, (settings.metrics_keys or "").split(","))),
        max_requests=settings.client_max_requests,
        rate=settings.client_rate,
        burst=settings.client_burst,
    )
    app.add_middleware(
        RequestGuard,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_bytes=settings.max_json_bytes,
        body_timeout=settings.body_timeout,
        body_grace=settings.body_grace_seconds,
        body_min_rate=settings.body_min_rate,
    )
    app.add_middleware(MetricsMiddleware)
    add_error_handlers(app)
    add_routes(app, settings, protected=keys is not None)
    app.openapi = lambda: openapi.openapi(app, explore.uploads_router.routes)  # type: ignore[method-assign]
    return app


def add_routes(app: FastAPI, settings: Settings, protected: bool) -> None:
    """The routers; operations that take uploads before the JSON operations of their paths.
    With API keys, the API's routers declare the key (the probes and pages stay open).
    The digits first: a request is matched against the routes in order."""
    keyed = [Depends(require_key)] if protected else []
    app.include_router(digits.router, dependencies=keyed)
    for router in (health.router, v2.health_router):  # before v2's catch-all for /v2/...
        app.include_router(router)
    for router in (model.router, tfserving.router, v2.router, explore.router):
        app.include_router(router, dependencies=keyed)
    # Multipart: at most VAE_MAX_BATCH files, and a few small fields beside them.
    uploads = {"max_files": settings.max_batch, "max_fields": 8, "max_part_size": 65536}
    for router in (digits.upload_router, explore.upload_router, explore.uploads_router):
        app.include_router(router, form_limits=uploads, dependencies=keyed)  # type: ignore[arg-type]
    for router in (explore.codes_router, report.router):
        app.include_router(router, dependencies=keyed)
    app.include_router(pages.router)
    pages.mount_static(app)


app = create_app()
