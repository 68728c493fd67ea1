"""Load for the reliability suite: an open-loop arrival process (requests sent at a fixed rate
whatever the answers, as real traffic arrives) and percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Outcome:
    """One request: its status (or the name of the transport error), how long it took, when it
    was sent (seconds from the start), and its Retry-After header."""

    status: int | str
    seconds: float
    sent_at: float
    retry_after: str | None = None


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


async def open_loop(
    url: str, rate: float, seconds: float, request: Callable[[int], dict[str, Any]]
) -> list[Outcome]:
    """Send ``rate`` requests a second for ``seconds`` (``request(i)`` gives httpx's
    arguments), each on its own task so a slow answer never delays the next arrival."""
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        start = time.perf_counter()

        async def one(index: int) -> None:
            sent = time.perf_counter()
            try:
                response = await client.request(**request(index))
                outcomes.append(
                    Outcome(
                        response.status_code,
                        time.perf_counter() - sent,
                        sent - start,
                        response.headers.get("retry-after"),
                    )
                )
            except httpx.HTTPError as error:
                outcomes.append(
                    Outcome(type(error).__name__, time.perf_counter() - sent, sent - start)
                )

        tasks = []
        for index in range(round(rate * seconds)):
            wait = start + index / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return outcomes
