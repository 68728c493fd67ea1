"""Clients that try to take the service from the others, against a real server process (uvicorn
as ``vae-serve`` runs it, the stand-in model), from a second loopback address (127.0.0.2) while
a polite client on 127.0.0.1 keeps working:

- slow POST: 4,000 connections announcing 100 kB bodies and trickling them a byte at a time
  (the issue: every ordinary request refused for as long as it lasted);
- greedy: hundreds of connections hammering ``/v1/decode`` with 64 codes (the issue: 98 % of
  its requests refused, and everyone else's with them).

The polite client gets only 200s; the abusive one gets 429s (its share) and 408s (too slow),
and every one of its connections is closed by the deadline.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections import Counter

import httpx

from tests.support.live import LiveServer

ATTACKER = "127.0.0.2"
GRACE, MIN_RATE = 2.0, 500  # VAE_BODY_GRACE_SECONDS, VAE_BODY_MIN_RATE for these servers
SLACK = 5.0  # what a busy machine may add before the server acts on a deadline


class Polite(threading.Thread):
    """One client on 127.0.0.1 sending ordinary requests one after another until told."""

    def __init__(self, url: str, body: dict):
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.statuses: Counter[int | str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    self.statuses[client.post("/v1/decode", json=self.body).status_code] += 1
                except httpx.HTTPError as error:
                    self.statuses[type(error).__name__] += 1


def trickling_connections(url: str, count: int) -> list[socket.socket]:
    """``count`` connections from the attacker's address, each announcing a 100 kB body."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        b"POST /v1/decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30, source_address=(ATTACKER, 0))
        sock.sendall(head)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def trickle_until_closed(socks: list[socket.socket], timeout: float) -> dict[str, float]:
    """Send a byte on every open connection each half second; read what the server answers.
    Returns when the server has closed every connection: the status of each answer (or
    "closed" without one), by when."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ, bytearray())
    started, outcomes, last_byte = time.monotonic(), {}, 0.0
    while selector.get_map() and time.monotonic() - started < timeout:
        if time.monotonic() - last_byte >= 0.5:
            last_byte = time.monotonic()
            for key in list(selector.get_map().values()):
                try:
                    key.fileobj.send(b" ")  # type: ignore[union-attr]
                except OSError:
                    pass  # the server closed it: the read below says how
        for key, _ in selector.select(timeout=0.1):
            sock, received = key.fileobj, key.data
            try:
                data = sock.recv(65536)  # type: ignore[union-attr]
            except OSError:
                data = b""
            received += data
            if not data:  # closed by the server
                status = received[9:12].decode() if received.startswith(b"HTTP/1.1") else ""
                outcomes[sock] = (status or "closed", time.monotonic() - started)
                selector.unregister(sock)
                sock.close()  # type: ignore[union-attr]
    for key in list(selector.get_map().values()):
        outcomes[key.fileobj] = ("still open", time.monotonic() - started)
        key.fileobj.close()  # type: ignore[union-attr]
    return {f"{i}": outcome for i, outcome in enumerate(outcomes.values())}  # type: ignore[misc]


def test_4000_trickling_connections_neither_stop_a_polite_client_nor_stay_open():
    codes = {"latents": [[0.0] * 20] * 4}
    with LiveServer(
        body_grace_seconds=GRACE, body_min_rate=MIN_RATE, max_connections=1024
    ) as server:
        polite = Polite(server.url, codes)
        polite.start()
        server.wait_for(lambda: polite.statuses[200] >= 5, "the polite client is served")
        opening = time.monotonic()
        socks = trickling_connections(server.url, 4000)
        opening = time.monotonic() - opening
        answered_before = polite.statuses[200]
        outcomes = trickle_until_closed(socks, timeout=GRACE + 100_000 / MIN_RATE + 3 * SLACK)
        served_meanwhile = polite.statuses[200] - answered_before
        polite.stop.set()
        polite.join(30)
        assert server.ready()
    statuses = Counter(status for status, _ in outcomes.values())
    slowest = max(seconds for _, seconds in outcomes.values())
    print(
        f"\n4,000 trickling connections (opened in {opening:.1f} s): {dict(statuses)}, the last "
        f"closed after {slowest:.1f} s; the polite client meanwhile: {served_meanwhile} "
        f"answers, {dict(polite.statuses)}"
    )
    assert set(polite.statuses) == {200}, polite.statuses
    assert served_meanwhile > 0
    assert "still open" not in statuses
    assert set(statuses) <= {"429", "408"}, statuses  # refused at once, or cut when too slow
    # At most its share of connections at once (VAE_CLIENT_MAX_CONNECTIONS, 128): a slot is
    # free again only when the connection in it was cut, a grace period later at the earliest.
    assert statuses["408"] <= 128 * (1 + opening / GRACE)
    # Cut by the deadline: the grace, then the rate the bytes it sent allow (a byte each half
    # second), never by the client's own 100 kB.
    assert slowest < GRACE + SLACK


async def hammer(url: str, connections: int, seconds: float) -> Counter[int | str]:
    """``connections`` clients from the attacker's address, each sending decode requests of 64
    codes back to back for ``seconds``."""
    statuses: Counter[int | str] = Counter()
    transport = httpx.AsyncHTTPTransport(local_address=ATTACKER, retries=0)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    body = {"latents": [[0.0] * 20] * 64}
    async with httpx.AsyncClient(
        base_url=url, transport=transport, limits=limits, timeout=30
    ) as client:
        deadline = time.monotonic() + seconds

        async def one_client() -> None:
            while time.monotonic() < deadline:
                try:
                    statuses[(await client.post("/v1/decode", json=body)).status_code] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1

        await asyncio.gather(*(one_client() for _ in range(connections)))
    return statuses


def test_a_greedy_client_gets_429s_and_a_polite_one_only_200s():
    # A slow model (20 ms a call): hundreds of requests at once are more than it serves.
    with LiveServer(delay=0.02) as server:
        polite = Polite(server.url, {"latents": [[0.0] * 20] * 4})
        polite.start()
        server.wait_for(lambda: polite.statuses[200] >= 5, "the polite client is served")
        greedy = asyncio.run(hammer(server.url, connections=300, seconds=8))
        polite.stop.set()
        polite.join(30)
        refused = {
            limit: server.metric("vae_client_refused_total", limit=limit)
            for limit in ("connections", "requests", "queue")
        }
        assert server.ready()
    print(
        f"\ngreedy client, 300 connections: {dict(greedy)}; refusals by limit {refused}; "
        f"polite client meanwhile {dict(polite.statuses)}"
    )
    assert set(polite.statuses) == {200}, polite.statuses
    assert greedy[429] > 0 and greedy[200] > 0
    assert 503 not in greedy  # its share ran out long before the service's capacity
