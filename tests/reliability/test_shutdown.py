"""SIGTERM under load: no admitted request is lost.

A real server process (uvicorn as ``vae-serve`` runs it: graceful shutdown, then the model's
batchers finish their queues) serving the stand-in model with slow calls, so that requests are
queued and in the model when the signal comes; 16 clients keep sending. The server writes the
``X-Request-Id`` of every request that reached the application; each of those must have got a
complete answer (200, or 503 from admission control with Retry-After). Requests the server
never read (refused connections once it stopped listening) are not admitted.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support.live import LiveServer

CLIENTS = 16
Outcome = tuple[int | str, str | None, float]  # status or error, Retry-After, when


class Client(threading.Thread):
    """Sends requests one after another until the server is gone; records each outcome."""

    def __init__(self, url: str, number: int, outcomes: dict[str, Outcome], stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.number, self.outcomes, self.stop = url, number, outcomes, stop

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for index in range(100_000):
                if self.stop.is_set():
                    return
                request_id = f"{self.number}-{index}"
                try:
                    response = client.post(
                        "/v1/generate", json={"count": 4}, headers={"X-Request-Id": request_id}
                    )
                    self.outcomes[request_id] = (
                        response.status_code,
                        response.headers.get("retry-after"),
                        time.monotonic(),
                    )
                except httpx.TransportError as error:
                    self.outcomes[request_id] = (type(error).__name__, None, time.monotonic())
                    if isinstance(error, httpx.ConnectError):
                        return  # the server no longer listens


def test_sigterm_under_load_loses_no_admitted_request(tmp_path: Path):
    admitted_log = tmp_path / "admitted.txt"
    outcomes: dict[str, Outcome] = {}
    stop = threading.Event()
    with LiveServer(
        delay=0.05,
        request_log=admitted_log,
        max_queue_rows=128,
        client_max_queue_rows=128,  # 16 clients on one address: all of them one client here
        request_timeout=5,
    ) as server:
        clients = [Client(server.url, n, outcomes, stop) for n in range(CLIENTS)]
        for client in clients:
            client.start()
        # The load is under way: every client has had answers, more requests are in flight.
        server.wait_for(lambda: len(outcomes) >= 4 * CLIENTS, "answers to the load")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(30)
        stopped = time.monotonic()
        stop.set()
        for client in clients:
            client.join(30)
        log = server.log()

    # uvicorn re-raises the signal after a graceful shutdown: -SIGTERM (or 0).
    assert status in (0, -signal.SIGTERM), log
    admitted = admitted_log.read_text().split()
    lost = [rid for rid in admitted if not isinstance(outcomes.get(rid, ("?", None, 0))[0], int)]
    answered_after_signal = [
        rid
        for rid in admitted
        if isinstance(outcomes[rid][0], int) and outcomes[rid][2] > signalled
    ]
    statuses = Counter(str(outcome[0]) for outcome in outcomes.values())
    print(
        f"\nSIGTERM under load: {len(admitted)} requests admitted, "
        f"{len(answered_after_signal)} of them answered after the signal, {len(lost)} lost; "
        f"shutdown took {stopped - signalled:.2f} s; all outcomes {dict(statuses)}"
    )
    assert not lost, [(rid, outcomes.get(rid)) for rid in lost[:10]]
    assert answered_after_signal, "no request was in flight when the signal came"
    assert all(
        outcome[0] in (200, 503) for outcome in outcomes.values() if isinstance(outcome[0], int)
    )
    assert all(outcome[1] for outcome in outcomes.values() if outcome[0] == 503)
