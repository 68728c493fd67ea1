"""Each request's body and client, watched by ASGI middleware (``RequestGuard``).

- A body over its limit is refused (413) as soon as that is known: at once from its
  Content-Length, else while it streams in, before any parsing (FastAPI would spool a whole
  multipart form to disk first). Uploads (multipart) may take ``VAE_MAX_UPLOAD_BYTES``; other
  bodies (JSON) ``VAE_MAX_JSON_BYTES``, smaller, because JSON is parsed on the event loop: a
  client posting 4.7 MiB bodies back to back took /healthz to a p99 of 4.7 s.
- A request answered before its body was read to the end (413, 408, or any early error)
  closes its connection: keeping it would mean reading the rest of that body to find the next
  request (a chunked upload could go on for ever).
- A body that stops arriving for ``VAE_BODY_TIMEOUT`` seconds is answered 408, and so is one
  that trickles: after ``VAE_BODY_GRACE_SECONDS`` a body must have averaged
  ``VAE_BODY_MIN_RATE`` bytes a second (Apache mod_reqtimeout's ``MinRate``), so a client
  sending a byte now and then holds a connection for seconds, not for ever, while a large
  upload on a slow link goes on.
- A client that goes away cancels its request: queued inference and image decoding that nobody
  waits for are dropped. Watching for the disconnect starts only once a request has taken 50 ms:
  the common fast request pays a timer, not a task (after 5 ms, every request under load got a
  watcher task).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CLOSE_AFTER = frozenset({408, 413, 431})
WATCH_AFTER_SECONDS = 0.05


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float):
        super().__init__(408, f"the request body stalled for {seconds:g} s (VAE_BODY_TIMEOUT)")


class BodyTooSlow(HTTPException):
    def __init__(self, grace: float, min_rate: int):
        super().__init__(
            408,
            f"the request body arrived slower than {min_rate} bytes a second after "
            f"{grace:g} s (VAE_BODY_MIN_RATE, VAE_BODY_GRACE_SECONDS)",
        )


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, setting: str):
        super().__init__(413, too_large(limit, setting))


def too_large(limit: int, setting: str) -> str:
    return f"request body larger than {limit} bytes ({setting})"


class RequestGuard:
    """Body size limit and stall timeout, connection close after refusing a body, cancel on
    disconnect."""

    def __init__(
        self,
        app: ASGIApp,
        max_upload_bytes: int,
        max_json_bytes: int,
        body_timeout: float,
        body_grace: float,
        body_min_rate: int,
    ):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes
        self.pace = _Pace(body_timeout, body_grace, body_min_rate)

    def limit(self, headers: dict[bytes, bytes]) -> tuple[int, str]:
        """The body limit for this request's content type, and the setting that sets it."""
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            return self.max_upload_bytes, "VAE_MAX_UPLOAD_BYTES"
        return self.max_json_bytes, "VAE_MAX_JSON_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.limit(headers)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit[0]:
            await _refuse_too_large(send, *limit)
            return
        has_body = b"transfer-encoding" in headers or declared not in (b"", b"0")
        request = _Request(receive, send, limit, self.pace, has_body)
        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(
            WATCH_AFTER_SECONDS, request.watch_disconnect, task
        )
        try:
            await self.app(scope, request.receive, request.send)
        except asyncio.CancelledError:
            if not request.client_gone:
                raise
            log.info("client went away: %s %s cancelled", scope["method"], scope["path"])
        finally:
            timer.cancel()
            request.stop_watching()


@dataclass(frozen=True)
class _Pace:
    """How fast a body must arrive: no gap over ``stall`` seconds, and, after ``grace``
    seconds, ``min_rate`` bytes a second on average."""

    stall: float
    grace: float
    min_rate: int

    def deadline(self, started: float, received: int) -> float:
        """When a body that started at ``started`` and has ``received`` bytes is too slow."""
        return started + self.grace + received / self.min_rate


class _Request:
    """One request's receive and send, as the guard wraps them."""

    def __init__(
        self,
        receive: Receive,
        send: Send,
        limit: tuple[int, str],
        pace: _Pace,
        has_body: bool,
    ):
        self._receive = receive
        self._send = send
        self.max_bytes, self.setting = limit
        self.received = 0
        self.pace = pace
        self.started = asyncio.get_running_loop().time()
        self.has_body = has_body
        self.body_done = False
        self.response_done = False
        self.client_gone = False
        self._task: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None

    async def receive(self) -> Message:
        loop = asyncio.get_running_loop()
        deadline = self.pace.deadline(self.started, self.received)
        wait = max(0.0, min(self.pace.stall, deadline - loop.time()))
        try:
            async with asyncio.timeout(wait):
                message = await self._receive()
        except TimeoutError:
            if loop.time() >= deadline:
                raise BodyTooSlow(self.pace.grace, self.pace.min_rate) from None
            raise BodyTimeout(self.pace.stall) from None
        if message["type"] == "http.disconnect":
            self.client_gone = True
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            raise BodyTooLarge(self.max_bytes, self.setting)
        more = message.get("more_body", False)
        if more and loop.time() > self.pace.deadline(self.started, self.received):
            raise BodyTooSlow(self.pace.grace, self.pace.min_rate)
        if not more:
            self.body_done = True
            if self._task is not None:  # the timer fired while the body was arriving
                self._start_watcher()
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and (
            message["status"] in CLOSE_AFTER or (self.has_body and not self.body_done)
        ):
            headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.response_done = True
        await self._send(message)

    def watch_disconnect(self, task: asyncio.Task) -> None:
        """The request is taking a while: cancel it if the client goes away."""
        self._task = task
        if self.body_done:
            self._start_watcher()

    def _start_watcher(self) -> None:
        if self._watcher is None and not self.response_done:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        # The body has been read: the next message can only be the disconnect.
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.response_done:
            self.client_gone = True
            assert self._task is not None
            self._task.cancel()

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


async def _refuse_too_large(send: Send, limit: int, setting: str) -> None:
    body = json.dumps({"detail": too_large(limit, setting)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
