"""``vae-serve``'s server: uvicorn (httptools, uvloop) with the guarded connection protocol,
the settings' limits, and worker processes whose metrics ``/metrics`` adds up."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import uvicorn

from app.config import Settings
from app.edge.connection import GuardedHttpToolsProtocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the service: the guarded protocol and the settings' limits (the
    reliability suite serves its stand-in model with these same options)."""
    return dict(
        http=GuardedHttpToolsProtocol,
        loop="uvloop",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
        # uvicorn kills a worker that misses its pings for 5 s by default: three replicas
        # importing TensorFlow at once on 2 cores missed them (measured), and the restarts slowed
        # the start further. A worker that is really stuck is still replaced, after a minute.
        timeout_worker_healthcheck=60,
        # On SIGTERM, admitted requests finish (each is bounded by its deadline) before exit.
        timeout_graceful_shutdown=int(settings.request_timeout) + 5,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # X-Forwarded-For names the client only when the balancer sent it: an address anyone
        # sets would pass any per-client limit.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        server_header=False,
    )


def run(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve ``app.main:app`` with uvicorn, the guarded protocol and the settings' limits."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker writes its metrics here and /metrics adds them up; set before any
        # worker imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="vae-metrics-")
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, **uvicorn_options(settings))
