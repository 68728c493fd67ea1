"""The reliability suite's server process: what ``vae-serve`` runs (uvicorn with the options and
guarded protocol of ``app.edge.server``, the application of ``app.main.create_app``, settings from
the ``VAE_*`` variables), serving the NumPy stand-in model of ``tests/support/fakes.py`` so that it
starts in a second, without TensorFlow.

    python -m tests.support.fake_server --port 8123 [--delay 0.05] [--leak-bytes 4096]
                                [--request-log ids.txt] [--gate PATH]

``--leak-bytes`` makes it leak that many bytes per request on purpose: the control that shows
the soak's memory check catches a leak. ``--request-log`` appends the ``X-Request-Id`` of every
request that reaches the application, so a test can tell which requests were admitted.
``--gate PATH`` holds every model call while PATH exists (``tests.support.fakes.FileGate``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.edge.server import uvicorn_options
from app.main import create_app
from tests.support.fakes import FakeLoader, FileGate, make_versions

LEAKED: list[bytearray] = []


class Leak:
    """Keeps ``size`` bytes per request forever (the deliberately leaking control)."""

    def __init__(self, app: ASGIApp, size: int):
        self.app = app
        self.size = size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            LEAKED.append(bytearray(b"x" * self.size))  # touched: resident, not just reserved
        await self.app(scope, receive, send)


class RequestLog:
    """Writes the ``X-Request-Id`` of each request the application receives, one per line."""

    def __init__(self, app: ASGIApp, path: Path):
        self.app = app
        self.file = path.open("a", buffering=1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request_id = dict(scope["headers"]).get(b"x-request-id")
            if request_id:
                self.file.write(request_id.decode() + "\n")
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per model call")
    parser.add_argument("--leak-bytes", type=int, default=0)
    parser.add_argument("--request-log", type=Path)
    parser.add_argument("--gate", type=Path, help="model calls wait while this file exists")
    args = parser.parse_args(argv)
    if "VAE_MODEL_DIR" not in os.environ:
        os.environ["VAE_MODEL_DIR"] = str(make_versions(Path(tempfile.mkdtemp()), 1))
    settings = Settings()
    gate = FileGate(args.gate) if args.gate else None
    app: ASGIApp = create_app(settings, FakeLoader(delay=args.delay, gate=gate))
    if args.leak_bytes:
        app = Leak(app, args.leak_bytes)
    if args.request_log:
        app = RequestLog(app, args.request_log)
    print(f"serving the stand-in model on {args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
