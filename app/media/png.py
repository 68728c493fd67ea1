"""Greyscale PNGs for a whole batch at once, byte-identical to Pillow's ``Image.save(.., "PNG")``.

Used by ``app.media.pictures`` for batches: the rows of every image are filtered in a few
numpy operations for the whole batch, choosing each row's filter as Pillow's ZIP encoder does
(``src/libImaging/ZipEncode.c``: none, up, sub, paeth, in that order, the first with the
smallest sum of |signed byte|; average only with ``optimize``),
then each image is deflated with Pillow's zlib settings (level 6, window 15, memLevel 9,
``Z_FILTERED``) and wrapped in the chunks Pillow writes for a mode "L" image without
``info``: signature, IHDR, IDAT pieces of ``max(65536, 4 * width)`` bytes, IEND.

Pillow and Python's ``zlib`` module both call the process's libz (Pillow's manylinux wheels
link the system's ``libz.so.1``), so the deflate streams are the same; ``matches_pillow()``
checks that on the running interpreter, and a caller must fall back to Pillow when it fails
(another Pillow build could bring its own zlib).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAXBLOCK = 65536  # PIL.ImageFile.MAXBLOCK: the encoder's output buffer, one IDAT per buffer
FILTER_CODES = np.array([0, 2, 1, 4], np.uint8)  # Pillow's trial order: none, up, sub, paeth


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
    )


IEND = _chunk(b"IEND", b"")


def _header(height: int, width: int) -> bytes:
    """Signature and IHDR: 8-bit greyscale, deflate, adaptive filtering, not interlaced."""
    return SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))


def filter_rows(pixels: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] -> uint8 [N, H, 1 + W]: each row prefixed by its filter type and
    filtered as Pillow's encoder would (the previous row of the first row is black)."""
    x = pixels.astype(np.int16)
    n, height, width = x.shape
    up_row = np.zeros_like(x)
    up_row[:, 1:] = x[:, :-1]  # b: the pixel above
    left = np.zeros_like(x)
    left[:, :, 1:] = x[:, :, :-1]  # a: the pixel to the left
    up_left = np.zeros_like(x)
    up_left[:, 1:, 1:] = x[:, :-1, :-1]  # c: above and to the left
    pa = np.abs(up_row - up_left)
    pb = np.abs(left - up_left)
    pc = np.abs(left + up_row - 2 * up_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up_row, up_left))
    candidates = np.stack([x, x - up_row, x - left, x - predictor]).astype(np.uint8)  # mod 256
    magnitude = np.minimum(candidates, 256 - candidates.astype(np.int16))  # |signed byte|
    choice = magnitude.sum(axis=3, dtype=np.int32).argmin(axis=0)  # first of the smallest
    rows = np.empty((n, height, width + 1), np.uint8)
    rows[:, :, 0] = FILTER_CODES[choice]
    rows[:, :, 1:] = np.take_along_axis(candidates, choice[None, :, :, None], axis=0)[0]
    return rows


def _idat(stream: bytes, width: int) -> bytes:
    block = max(MAXBLOCK, 4 * width)
    return b"".join(_chunk(b"IDAT", stream[i : i + block]) for i in range(0, len(stream), block))


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
    return compressor.compress(data) + compressor.flush()


def png_batch(pixels: np.ndarray) -> list[bytes]:
    """PNGs of uint8 [N, H, W] greyscale images, as Pillow would write each of them."""
    n, height, width = pixels.shape
    head = _header(height, width)
    rows = filter_rows(pixels)
    return [head + _idat(_deflate(image.tobytes()), width) + IEND for image in rows]


def png(pixels: np.ndarray) -> bytes:
    """One PNG of uint8 [H, W] (a grid, say), as Pillow would write it."""
    return png_batch(pixels[None])[0]


def pillow_png(pixels: np.ndarray) -> bytes:
    """The reference: Pillow's PNG of uint8 [H, W]."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def matches_pillow(samples: int = 8, seed: int = 0) -> bool:
    """True when this interpreter's zlib gives Pillow's bytes (random, smooth and blank)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    blob = (255 * np.exp(-((yy - 14) ** 2 + (xx - 12) ** 2) / 30)).astype(np.uint8)
    batch = np.stack(
        [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(samples)]
        + [blob, np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)]
    )
    return png_batch(batch) == [pillow_png(image) for image in batch]
