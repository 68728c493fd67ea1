"""Prometheus metrics: requests by route and status, latency, and time spent in the model."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "vae_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
LATENCY = Histogram(
    "vae_http_request_seconds", "HTTP request latency", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INFERENCE = Histogram(
    "vae_inference_seconds", "Time in the SavedModel per (batched) call", ["signature"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
BATCH_REQUESTS = Histogram(
    "vae_batch_requests", "Requests merged into one SavedModel call", ["signature"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
IMAGES = Counter("vae_images_total", "Images generated, decoded or encoded", ["endpoint"])
MODEL_READY = Gauge("vae_model_ready", "1 when a model is loaded and warm")


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): counts and times each HTTP request by its
    route template, so label values stay few."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            LATENCY.labels(path).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], path, str(status)).inc()
