"""Uploaded images read and made MNIST-like with bounded memory: the one place uploads are read.

Decoding is the one step whose memory grows with the input: an 18 kB PNG can hold 16
megapixels. So uploads are decoded in worker threads, at most ``VAE_DECODE_CONCURRENCY`` at
once, and only while the memory that the images being decoded (by all requests together) may
take stays within ``VAE_DECODE_MEMORY_BYTES``. Each image is
charged what its decoding takes at most (``preprocess.decode_cost``, from its header: 2 to 18
bytes a pixel by mode and format); one that could never fit is refused (413) before a pixel
of it is decoded, the others wait their turn in arrival order. Files spooled to disk by the
multipart parser are decoded straight from there.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import BinaryIO

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app import metrics
from app.media import preprocess
from app.media.preprocess import ImageError

MiB = 1024 * 1024


class Budget:
    """A weighted semaphore served in arrival order (event loop only): ``hold(amount)``
    waits until ``amount`` more fits within ``total``, then holds it while the block runs.
    A waiter that is cancelled (deadline, client gone) leaves the queue and takes nothing."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[None]:
        if self._waiting or self.used + amount > self.total:
            await self._wait_for(amount)
        else:
            self.used += amount
        try:
            yield
        finally:
            self._release(amount)

    async def _wait_for(self, amount: int) -> None:
        entry = (amount, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():
                self._release(amount)  # granted just as it was cancelled: give it back
            else:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                self._wake()  # the ones behind it may fit now
            raise

    def _release(self, amount: int) -> None:
        self.used -= amount
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.total:
            amount, granted = self._waiting.popleft()
            if granted.cancelled():
                continue
            self.used += amount
            granted.set_result(None)


class UploadError(ValueError):
    """An uploaded file that cannot be used: which one (its position), the HTTP status to
    answer (413, 415 or 422) and why, naming the file."""

    def __init__(self, index: int, error: ImageError):
        super().__init__(error.message)
        self.index = index
        self.status_code = error.status_code
        self.message = error.message


class UploadReader:
    """Turns uploaded files into MNIST-like [28, 28] arrays, within the memory bounds."""

    def __init__(self, max_pixels: int, concurrency: int, memory_bytes: int):
        self.max_pixels = max_pixels
        self._slots = asyncio.Semaphore(concurrency)
        self._budget = Budget(memory_bytes)

    async def read(self, files: Sequence[UploadFile]) -> np.ndarray:
        """The uploads, in order, as float32 [N, 28, 28]; raises ``UploadError`` for the first
        file that cannot be used."""
        batch = []
        for index, upload in enumerate(files):
            name = upload.filename or f"file #{index + 1}"
            try:
                batch.append(await self.load(upload.file, name))
            except ImageError as error:
                raise UploadError(index, error) from None
        return np.stack(batch)

    async def load(self, source: bytes | BinaryIO, name: str) -> np.ndarray:
        """One upload (its bytes, or a file such as an upload spooled to disk, read only as
        far as decoding needs) as float32 [28, 28]; raises ``ImageError`` (413, 415, 422)."""
        image = preprocess.open_image(source, self.max_pixels, name)  # the header only
        cost = preprocess.decode_cost(image)
        if cost > self._budget.total:
            raise ImageError(
                413,
                f"{name}: decoding this {image.width}×{image.height} {image.format} "
                f"image takes up to {cost // MiB} MiB, more than the decoding budget of "
                f"{self._budget.total // MiB} MiB (VAE_DECODE_MEMORY_BYTES)",
            )
        async with self._budget.hold(cost), self._slots:
            with metrics.UPLOADS_DECODING.track_inprogress():
                return await run_in_threadpool(_decode, image, name)


def _decode(image: preprocess.Image.Image, name: str) -> np.ndarray:
    """Decode one upload (in a worker thread), counted once done, asked for or not."""
    digit = preprocess.mnist_like(image, name)
    metrics.UPLOADS_DECODED.inc()
    return digit
