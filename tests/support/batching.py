"""Requests queued behind a busy inference thread, deterministically (no sleeps): the batcher
merges what was queued while it was held."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from app.api.latent import sample_rows
from app.serving.batching import Batcher


class Hold:
    """An answer whose encoding holds the inference thread until released, and says when it
    has started: other requests queue meanwhile, deterministically (no sleeps)."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def heavy(self, rows: int) -> bool:
        return False

    def encode(self, outputs):
        self.started.set()
        self.release.wait(10)
        return outputs


# Four generate requests (count, seed, temperature, digit): ten rows.
REQUESTS = [(1, 5, 1.0, None), (3, 6, 0.7, 2), (2, 5, 1.0, None), (4, 99, 0.0, 9)]


async def while_busy(batcher: Batcher, submit):
    """Queue ``submit()``'s requests while the inference thread is held, then release it."""
    hold = Hold()
    first = asyncio.ensure_future(batcher.run("decode", {"z": np.zeros((1, 20), np.float32)}, hold))
    await asyncio.to_thread(hold.started.wait, 10)
    pending = submit()
    await asyncio.sleep(0)  # let the submissions reach the queue
    hold.release.set()
    await first
    return await asyncio.gather(*pending, return_exceptions=True)


def generate_all(batcher: Batcher) -> list[asyncio.Future]:
    """The four generate requests of ``REQUESTS``, queued at once."""
    return [asyncio.ensure_future(batcher.run("sample_batch", sample_rows(*r))) for r in REQUESTS]
