"""The guarded connection protocol's writes (``app.edge.connection``): uvicorn's protocol with a
recording transport and a small ASGI app. A response is one write, head and body together; a
response without body bytes still writes its head; an interim 100 Continue goes out at once."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from app.edge.connection import GuardedHttpToolsProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True


async def echo_app(scope, receive, send) -> None:
    """Answers the request body back (after reading it), or 204 for /empty."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = 204 if scope["path"] == "/empty" else 200
    answer = b"" if status == 204 else body or b"hello"
    headers = [(b"content-length", str(len(answer)).encode())] if status == 200 else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def exchange(request: bytes) -> list[bytes]:
    """The writes the protocol makes for one request on a fresh connection."""

    async def run() -> list[bytes]:
        config = Config(app=echo_app, http=GuardedHttpToolsProtocol, log_level="warning")
        config.load()
        protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(100):  # the app's task runs on this loop
            if any(
                b"\r\n\r\n" in w and not w.startswith(b"HTTP/1.1 100") for w in transport.writes
            ):
                break
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    return asyncio.run(run())


def test_a_response_is_one_write_head_and_body_together():
    writes = exchange(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nhello")


def test_responses_without_body_bytes_still_write_their_head():
    for request in (
        b"HEAD /echo HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /empty HTTP/1.1\r\nhost: x\r\n\r\n",
    ):
        writes = exchange(request)
        assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n"), request


def test_an_interim_100_continue_is_written_before_the_response():
    writes = exchange(
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n"
    )
    assert writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(writes) == 2 and writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
