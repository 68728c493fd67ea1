"""Who a request comes from, whether it may come in, and how much of the service one client may
take: API keys and per-client limits, as ASGI middleware (``Clients``), before any body is read.

The client is the peer address, or the address a trusted proxy (``VAE_TRUSTED_PROXIES``, the
balancer) puts in ``X-Forwarded-For`` (uvicorn's proxy headers, configured by
``app.edge.server``): never a header anyone can set. A request bearing a valid API key is its
key's client (``key:<name>``), so a tenant's limits follow its key from any address.

Beyond its share, a client gets 429 with ``Retry-After``: requests in flight
(``VAE_CLIENT_MAX_REQUESTS``) and a request rate (``VAE_CLIENT_RATE``, a token bucket of
``VAE_CLIENT_BURST``); its connections are counted by ``app.edge.connection`` and its admitted
rows by ``app.serving.admission``. 503 stays for "the whole service is full". Health and
readiness probes and the pages are open and never limited. Every limit is per worker process.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from app import metrics
from app.edge.api_keys import ApiKeys

# Open to anyone, never limited: probes, the explorer and the API docs (their API calls are not).
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/", "/docs", "/redoc", "/openapi.json", "/favicon.ico"}
)
OPEN_PREFIXES = ("/static/", "/v2/health/")
METRICS_PATH = "/metrics"
CLIENT = "vae.client"  # the scope keys this middleware sets
KEY = "vae.key"
MAX_BUCKETS = 10_000  # idle clients' buckets are forgotten beyond this many


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: int
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take a token: 0 if there was one, else the seconds until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Clients:
    """API keys and the per-client request limits, for every request that is not open."""

    def __init__(
        self,
        app: ASGIApp,
        keys: ApiKeys | None,
        metrics_keys: frozenset[str],
        max_requests: int,
        rate: float,
        burst: int,
    ):
        self.app = app
        self.keys = keys
        self.metrics_keys = metrics_keys
        self.max_requests = max_requests
        self.rate = rate
        self.burst = burst
        self.in_flight: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = self.keys.name_of(bearer_token(scope)) if self.keys is not None else None
        client = f"key:{key}" if key else (scope.get("client") or ("unknown",))[0]
        scope[CLIENT], scope[KEY] = client, key
        refusal = self.refusal(scope["path"], key, client)
        if refusal is not None:
            await refusal(send)
            return
        if key:
            metrics.KEY_REQUESTS.labels(key).inc()
        self.in_flight[client] = self.in_flight.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.in_flight[client] - 1
            if left:
                self.in_flight[client] = left
            else:
                del self.in_flight[client]

    def refusal(self, path: str, key: str | None, client: str) -> _Answer | None:
        """Why this request may not come in (401, 403, 429), or None."""
        if self.keys is not None and key is None:
            return unauthorized()
        if path == METRICS_PATH and self.metrics_keys and key not in self.metrics_keys:
            return _Answer(403, "this key may not read /metrics (VAE_METRICS_KEYS)", {})
        if self.max_requests and self.in_flight.get(client, 0) >= self.max_requests:
            return too_many(
                "requests", f"{self.max_requests} requests in flight (VAE_CLIENT_MAX_REQUESTS)", 1
            )
        if self.rate:
            wait = self.bucket(client).take(time.monotonic())
            if wait:
                return too_many(
                    "rate", f"more than {self.rate:g} requests a second (VAE_CLIENT_RATE)", wait
                )
        return None

    def bucket(self, client: str) -> TokenBucket:
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self.forget_idle(time.monotonic())
            bucket = self.buckets[client] = TokenBucket(
                self.rate, self.burst, float(self.burst), time.monotonic()
            )
        return bucket

    def forget_idle(self, now: float) -> None:
        """Drop the buckets that have filled up again: their clients are as if new."""
        for client, bucket in list(self.buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * bucket.rate >= bucket.burst:
                del self.buckets[client]


@dataclass(frozen=True)
class _Answer:
    status: int
    message: str
    headers: dict[str, str]

    async def __call__(self, send: Send) -> None:
        body = json.dumps({"detail": self.message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def unauthorized() -> _Answer:
    """401 for a missing or wrong key (RFC 6750's challenge)."""
    return _Answer(
        401,
        "an API key is needed: Authorization: Bearer <key>",
        {"WWW-Authenticate": 'Bearer realm="vae-digits"'},
    )


def too_many(limit: str, what: str, wait: float) -> _Answer:
    """429 for a client over its share, saying which and when to come back."""
    metrics.CLIENT_REFUSED.labels(limit).inc()
    return _Answer(
        429,
        f"too many requests from this client: {what}; retry later",
        {"Retry-After": str(max(1, math.ceil(wait)))},
    )
