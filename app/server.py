"""The HTTP server ``vae-serve`` runs: uvicorn (httptools, uvloop) with the limits it lacks.

uvicorn bounds idle keep-alive connections and, with ``limit_concurrency``, the connections
and requests at once (503 beyond). It does not bound how long or how large a request's head
(request line and headers) may be: a client could hold a socket by sending nothing, or one
header byte at a time, or fill memory with megabyte headers. ``GuardedHttpToolsProtocol`` adds
both limits. It also closes a refused upload's connection gently: the answer (say 413) is sent
and the sending side shut at once, then what the client is still sending is read and dropped
for a moment, so it gets the 413 instead of a connection reset (nginx's lingering close).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings, get_settings

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a head timeout, a head size limit and lingering
    close. Limits come from the settings (``VAE_HEADER_TIMEOUT``, ``VAE_MAX_HEADER_BYTES``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_timeout
        self.max_header_bytes = settings.max_header_bytes
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_complete = True
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()  # a client that connects and says nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # a refused body still arriving: drop it
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large",
                         f"request line and headers exceed {self.max_header_bytes} bytes "
                         "(VAE_MAX_HEADER_BYTES)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._body_complete = False
        if self._head_timer is None:
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:
            self.cycle.transport = _GentleClose(self)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_complete = True

    def close_after_response(self) -> None:
        """The cycle's close: at once if the request was read to its end, else linger."""
        if self._body_complete or not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, "Request Timeout",
                         f"request headers not received within {self.header_timeout:g} s "
                         "(VAE_HEADER_TIMEOUT)")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self.logger.info("closing a connection: %s", message)
        self._reading_head = False
        self._lingering = True
        self.transport.write(_raw_response(status, reason, message))
        self.transport.close()


class _GentleClose:
    """The transport as one request's cycle sees it: ``close()`` is the protocol's."""

    def __init__(self, protocol: GuardedHttpToolsProtocol):
        self._protocol = protocol
        self._transport = protocol.transport

    def close(self) -> None:
        self._protocol.close_after_response()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def run(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve ``app.main:app`` with uvicorn, the guarded protocol and the settings' limits."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker writes its metrics here and /metrics adds them up; set before any
        # worker imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="vae-metrics-")
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        http=GuardedHttpToolsProtocol,
        loop="uvloop",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
        # On SIGTERM, admitted requests finish (each is bounded by its deadline) before exit.
        timeout_graceful_shutdown=int(settings.request_timeout) + 5,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
    )
