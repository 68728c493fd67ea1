"""``vae-serve``'s server: uvicorn (httptools, uvloop) with the guarded connection protocol,
the settings' limits, and worker processes whose metrics ``/metrics`` adds up.

Each worker listens on its own ``SO_REUSEPORT`` socket (Linux), so the kernel spreads new
connections over the workers by a hash of their addresses. With uvicorn's one shared socket,
the worker woken first accepts every connection waiting: of wrk's 16 connections one worker
got 16, 15 or 12 in some runs (measured with ``ss``), and one worker serves about half of
what two do (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from app.config import Settings
from app.edge.connection import GuardedHttpToolsProtocol

log = logging.getLogger("uvicorn.error")


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


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with ``SO_REUSEPORT``: every such socket of the same
    user on that address gets its share of the connections once it listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class OwnListener:
    """What uvicorn hands each worker process in place of the shared socket: unpickled in the
    worker (uvicorn's workers are spawned), it is a new ``SO_REUSEPORT`` socket on the address,
    that worker's alone; a restarted worker binds a new one the same way."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def run(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve ``app.main:app`` with uvicorn, the guarded protocol and the settings' limits."""
    options = uvicorn_options(settings)
    if workers == 1 or not sys.platform.startswith("linux"):
        uvicorn.run("app.main:app", host=host, port=port, workers=workers, **options)
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker writes its metrics here and /metrics adds them up; set before any
        # worker imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="vae-metrics-")
    config = uvicorn.Config("app.main:app", host=host, port=port, workers=workers, **options)
    # Bound, never listening: it holds the address (a port in use fails here, at once; port 0
    # becomes a real one) and takes no connections itself.
    try:
        holder = reuse_port_socket(host, port)
    except OSError as error:  # as uvicorn.run says it: one line, STARTUP_FAILURE
        log.error(error)
        sys.exit(STARTUP_FAILURE)
    port = holder.getsockname()[1]
    log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port)
    try:
        Multiprocess(config, sockets=[OwnListener(host, port)]).run()  # type: ignore[list-item]
    finally:
        holder.close()
