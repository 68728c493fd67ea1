"""Uploaded images decoded with bounded memory.

Decoding is the one step whose memory grows with the input: an 18 kB PNG can hold 16
megapixels. So uploads are decoded in worker threads, at most ``VAE_DECODE_CONCURRENCY`` at
once, and only while the pixels being decoded by all requests together stay within
``VAE_DECODE_PIXEL_BUDGET``; an image larger than the whole budget is refused before a pixel
of it is decoded. Each decode needs at most about 8 bytes per pixel (the decoded frame, its
grey levels and alpha), so the budget bounds the process's decoding memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from starlette.concurrency import run_in_threadpool

from app import images

BYTES_PER_PIXEL = 8  # the worst case of decode + grey + alpha, measured in tests/test_pressure.py


class PixelBudget:
    """A weighted semaphore in pixels (event-loop only)."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + pixels <= self.total)
            self.used += pixels
        try:
            yield
        finally:
            async with self._changed:
                self.used -= pixels
                self._changed.notify_all()


class UploadDecoder:
    """Turns uploaded files into MNIST-like [28, 28] arrays, within the memory bounds."""

    def __init__(self, max_pixels: int, concurrency: int, pixel_budget: int):
        self.max_pixels = min(max_pixels, pixel_budget)
        self._slots = asyncio.Semaphore(concurrency)
        self._budget = PixelBudget(pixel_budget)

    async def load(self, data: bytes, name: str) -> np.ndarray:
        """One upload as float32 [28, 28]; raises ``images.ImageError`` (413, 415, 422)."""
        image = images.open_image(data, self.max_pixels, name)  # the header only
        width, height = image.size
        async with self._budget.hold(width * height), self._slots:
            return await run_in_threadpool(images.mnist_like, image, name)
