"""Every HTTP request counted and timed in Prometheus, by route template and status."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics


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
            metrics.child(metrics.LATENCY, path).observe(time.perf_counter() - started)
            metrics.child(metrics.REQUESTS, scope["method"], path, str(status)).inc()
