"""Admission control: a bounded amount of work in flight, and a deadline for each request.

As TensorFlow Serving's ``max_enqueued_batches`` and Triton's ``max_queue_size`` do, excess
work is refused at once (503 with ``Retry-After``) instead of waiting in a queue that grows
without limit: the rows (images) admitted and not yet answered are counted, and a request that
would take them over ``VAE_MAX_QUEUE_ROWS`` is refused before it is queued. An admitted request
that is not answered within ``VAE_REQUEST_TIMEOUT`` seconds is cancelled (its queued work is
dropped unrun) and answered 503 too.

Fair by design: one client (its API key, else its address) may hold at most its share of those
rows (``VAE_CLIENT_MAX_QUEUE_ROWS``, a quarter by default) beyond its first request; over it,
its own requests get 429, so the rest of the queue stays open to the other clients.

All of this runs on the event loop's thread: no locks.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

from app import metrics
from app.serving.errors import Overloaded, OverShare


class Admission:
    """Counts the rows in flight, refuses beyond ``max_rows`` (503) or beyond one client's
    ``per_client`` share (429), and bounds each request's time."""

    def __init__(self, max_rows: int, timeout: float, per_client: int | None = None):
        self.max_rows = max_rows
        self.timeout = timeout
        self.per_client = per_client or max_rows
        self.rows = 0
        self.client_rows: dict[str, int] = {}
        metrics.QUEUE_CAPACITY.set(max_rows)

    @property
    def retry_after(self) -> int:
        """Seconds a refused client should wait: about the time to answer what is admitted."""
        return max(1, math.ceil(self.timeout * self.rows / self.max_rows / 4))

    def admit(self, rows: int, endpoint: str, client: str | None = None) -> Ticket:
        """Hold ``rows`` of the capacity (and of ``client``'s share) while an ``async with``
        block runs, within the request deadline."""
        return Ticket(self, max(rows, 1), endpoint, client)

    def take(self, rows: int, endpoint: str, client: str | None) -> None:
        """Count ``rows`` in, or refuse them: 503 when the whole service is full (first), 429
        when ``client`` is over its share."""
        if self.rows + rows > self.max_rows:
            metrics.REFUSED.labels(endpoint, "overloaded").inc()
            raise Overloaded(
                "overloaded",
                f"overloaded: {self.rows} images in flight, the limit is {self.max_rows} "
                "(VAE_MAX_QUEUE_ROWS); retry later",
                self.retry_after,
            )
        held = self.client_rows.get(client, 0) if client else 0
        if held and held + rows > self.per_client:
            metrics.CLIENT_REFUSED.labels("queue").inc()
            raise OverShare(
                f"too many requests from this client: {held} images of its own in flight, "
                f"its share is {self.per_client} (VAE_CLIENT_MAX_QUEUE_ROWS); retry later",
                self.retry_after,
            )
        self.rows += rows
        if client:
            self.client_rows[client] = held + rows
        metrics.QUEUED_ROWS.set(self.rows)

    def give_back(self, rows: int, client: str | None) -> None:
        """Count ``rows`` out again."""
        self.rows -= rows
        if client:
            left = self.client_rows[client] - rows
            if left:
                self.client_rows[client] = left
            else:
                del self.client_rows[client]
        metrics.QUEUED_ROWS.set(self.rows)

    def deadline_passed(self, endpoint: str) -> Overloaded:
        metrics.REFUSED.labels(endpoint, "deadline").inc()
        return Overloaded(
            "deadline",
            f"not answered within {self.timeout:g} s (VAE_REQUEST_TIMEOUT); retry later",
            self.retry_after,
        )


class Ticket:
    """One request's admission, as an async context manager (a class: cheaper on the event
    loop than a generator's)."""

    __slots__ = ("admission", "rows", "endpoint", "client", "_timeout")

    def __init__(self, admission: Admission, rows: int, endpoint: str, client: str | None):
        self.admission = admission
        self.rows = rows
        self.endpoint = endpoint
        self.client = client
        self._timeout: asyncio.Timeout | None = None

    async def __aenter__(self) -> None:
        self.admission.take(self.rows, self.endpoint, self.client)
        self._timeout = asyncio.timeout(self.admission.timeout)
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._timeout is not None
        try:
            await self._timeout.__aexit__(kind, error, tb)
        except TimeoutError:
            raise self.admission.deadline_passed(self.endpoint) from None
        finally:
            self.admission.give_back(self.rows, self.client)
