"""One HTTP connection as ``vae-serve`` handles it: uvicorn's httptools protocol with the limits
it lacks.

uvicorn bounds idle keep-alive connections and, with ``limit_concurrency``, the connections
and requests at once (503 beyond). It does not bound how long or how large a request's head
(request line and headers) may be: a client could hold a socket by sending nothing, or one
header byte at a time, or fill memory with megabyte headers. ``GuardedHttpToolsProtocol`` adds
both limits, and refuses a connection beyond ``limit_concurrency`` as soon as it is made (503)
instead of holding it until the client sends a request. One client address may hold at most
``VAE_CLIENT_MAX_CONNECTIONS`` of them (a trusted proxy, which carries many clients, is not
counted): beyond, 429 as it connects, so that one client cannot take the pool.

A response's head (status line and headers) is written together with its body: uvicorn writes
them one after the other, two writes and two segments, and each wakes the client; one write
is one wake-up (a generate request: the head's write alone took a fifth of the event loop's
time, measured with py-spy --gil).

Every connection it refuses, and every one closed while the client may still be sending (a
refused upload), is closed gently: the answer (say 413) is sent and our sending side shut at
once, then what the client still sends is read and dropped for a moment (at most
``LINGER_SECONDS`` and ``LINGER_BYTES``), so that a client busy sending reads the answer
instead of a connection reset (nginx's lingering close). Closing with unread data would send a
reset at once, and the kernel drops the answer still queued with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app import metrics
from app.config import get_settings

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0
# On loopback a client sends gigabytes in LINGER_SECONDS: dropping them costs a core for that
# long (3.6 GB in 2 s, measured), so a lingering connection closes after this many bytes too.
LINGER_BYTES = 8 * 1024 * 1024


def _raw_response(status: int, reason: str, message: str) -> bytes:
    """A whole answer, JSON ``{"detail": ...}`` like the application's errors."""
    body = json.dumps({"detail": message}).encode()
    retry = "retry-after: 1\r\n" if status in (429, 503) else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{retry}"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class PeerConnections:
    """Connections open per client address in this worker; trusted proxies are not counted."""

    def __init__(self, limit: int, trusted: str):
        self.limit = limit
        self.open: dict[str, int] = {}
        self.trust_all = trusted.strip() == "*"
        self.trusted = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in trusted.split(",")
            if item.strip() and item.strip() != "*"
        ]

    def counts(self, peer: str) -> bool:
        """Whether connections from ``peer`` count against the limit."""
        if not self.limit or self.trust_all:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # not an IP address (a Unix socket): one client
            return True
        return not any(address in network for network in self.trusted)

    def add(self, peer: str) -> bool:
        """Count a new connection of ``peer``; False if it is one too many."""
        held = self.open.get(peer, 0)
        if held >= self.limit:
            return False
        self.open[peer] = held + 1
        return True

    def remove(self, peer: str) -> None:
        left = self.open[peer] - 1
        if left:
            self.open[peer] = left
        else:
            del self.open[peer]


@lru_cache
def peer_connections() -> PeerConnections:
    """This worker's count, from its settings (uvicorn makes one protocol per connection)."""
    settings = get_settings()
    return PeerConnections(settings.client_max_connections, settings.trusted_proxies)


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
        self._dropped = 0
        self._peer: str | None = None  # counted in peer_connections()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn answers 503 once such a connection sends a request; refusing it now means a
        # client cannot hold sockets beyond the limit by sending nothing.
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            self._refuse(
                503,
                "Service Unavailable",
                f"at the limit of {self.limit_concurrency} connections at once "
                "(VAE_MAX_CONNECTIONS); retry later",
            )
            return
        peers, peer = peer_connections(), self.client[0] if self.client else ""
        if peers.counts(peer):
            if not peers.add(peer):
                metrics.CLIENT_REFUSED.labels("connections").inc()
                self._refuse(
                    429,
                    "Too Many Requests",
                    f"too many connections from this client: {peers.limit} at once "
                    "(VAE_CLIENT_MAX_CONNECTIONS); retry later",
                )
                return
            self._peer = peer
        self._start_head_timer()  # a client that connects and says nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._peer is not None:
            peer_connections().remove(self._peer)
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # a refused body still arriving: drop it
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.max_header_bytes:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"request line and headers exceed {self.max_header_bytes} bytes "
                "(VAE_MAX_HEADER_BYTES)",
            )

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
            self.cycle.transport = _ResponseTransport(self, self.cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_complete = True

    def close_after_response(self) -> None:
        """The cycle's close: at once if the request was read to its end, else linger."""
        if self._body_complete:
            self.transport.close()
        else:
            self._linger()

    def _linger(self) -> None:
        """Shut our sending side, drop what still arrives for a moment, then close."""
        if self._lingering:
            return
        self._lingering = True
        if not self.transport.can_write_eof():
            self.transport.close()
            return
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
            self._refuse(
                408,
                "Request Timeout",
                f"request headers not received within {self.header_timeout:g} s "
                "(VAE_HEADER_TIMEOUT)",
            )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self.logger.info("closing a connection: %s", message)
        self._stop_head_timer()
        self._reading_head = False
        # It serves no more requests: out of the pool now, not when the linger ends (4,000
        # refused connections lingering filled VAE_MAX_CONNECTIONS: everyone else got 503).
        self.connections.discard(self)
        self.transport.write(_raw_response(status, reason, message))
        self._linger()


class _ResponseTransport:
    """The transport as one request's cycle sees it: the response head is held until the first
    body bytes and written with them; ``close()`` is the protocol's (gentle) close."""

    def __init__(self, protocol: GuardedHttpToolsProtocol, cycle: RequestResponseCycle):
        self._protocol = protocol
        self._transport = protocol.transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._body_started = False
        # A response without body bytes (HEAD, 204, 304) writes its head when it completes.
        self._on_response = cycle.on_response
        cycle.on_response = self._response_complete

    def _response_complete(self) -> None:
        self.flush()
        self._on_response()

    def write(self, data: bytes) -> None:
        if not self._body_started and self._cycle.response_started:
            if self._head is None:  # the head: written with the body
                self._head = data
                return
            self._body_started = True
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        """Write a head still held (its response has no body bytes)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._body_started = True
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._protocol.close_after_response()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
