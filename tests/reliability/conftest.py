"""The reliability suite's shared fixtures: one stand-in server per module with the default
settings (a module that needs others defines its own ``server``), and a client without retries."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer() as live:
        yield live


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    # No retries: a dropped connection surfaces as httpx.TransportError and fails the test.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
