"""Uploads made MNIST-like: opened lazily, decoded small, greyscale, white on black, fitted
and centred.

MNIST digits are white on black, fitted into a 20×20 box (aspect kept) and centred by their
centre of mass in 28×28. ``load_upload`` does the same to photos, scans and drawings.
"""

from __future__ import annotations

import io
import math
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
SIZE = 28
BOX = 20
INK_THRESHOLD = 0.2  # share of the darkest-to-lightest range that counts as ink when cropping
WORK_SIZE = 512  # uploads are processed at most this many pixels a side


class ImageError(ValueError):
    """An upload that cannot be used; ``status_code`` is the HTTP status to answer."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def open_image(source: bytes | BinaryIO, max_pixels: int, name: str) -> Image.Image:
    """Open an upload lazily: its format and size are known, no pixel is decoded yet. A JPEG
    is set to decode at reduced size (libjpeg's 1/2..1/8 scaling, to at least ``WORK_SIZE``
    a side), so a 12-megapixel photo never exists at full size in memory."""
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    if not file.read(1):
        raise ImageError(415, f"{name}: empty file, expected an image")
    file.seek(0)
    try:
        image = Image.open(file, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(413, f"{name}: image has too many pixels") from None
    except Exception:  # noqa: BLE001 - Pillow raises many types for "not an image"
        raise ImageError(
            415, f"{name}: not an image in an accepted format ({', '.join(ALLOWED_FORMATS)})"
        ) from None
    width, height = image.size
    if width * height > max_pixels:  # header only so far: refuse bombs before decoding
        raise ImageError(
            413, f"{name}: {width}×{height} pixels is more than the limit of {max_pixels}"
        )
    if width == 0 or height == 0:
        raise ImageError(422, f"{name}: the image has no pixels ({width}×{height})")
    if image.format == "JPEG":
        image.draft(image.mode, (WORK_SIZE, WORK_SIZE))
    return image


def decode_cost(image: Image.Image) -> int:
    """The most memory, in bytes, that ``decode`` takes for an opened upload (an upper bound
    known from its header). Measured for every mode and format on 4000×3999 images by
    tests/reliability/test_pressure.py: the decoded frame and one converted copy of it (Pillow
    keeps most modes at 4 bytes a pixel), plus a byte a pixel for the decoders' buffers; WebP
    18 bytes a pixel (libwebp's canvas and the frame's raw bytes stay alive with the image)."""
    pixels = image.width * image.height
    if image.format == "WEBP":
        return pixels * 18
    mode = _averageable_mode(image)
    stored = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return pixels * (2 * stored + 1)


def decode(image: Image.Image, name: str) -> Image.Image:
    """Decode the first frame, shrink it to at most ``WORK_SIZE`` pixels a side, upright.

    Only the decoded frame ever exists at full size, and JPEG not even that (libjpeg's
    1/2..1/8 scaling): the frame is shrunk in its own mode before any other conversion or
    copy. That is what bounds an upload's memory by its pixels (``app.media.uploads``);
    converting
    first, and ``exif_transpose``'s copy, took a 16-megapixel float TIFF to 16 bytes a pixel.
    """
    try:
        image.seek(0)  # first frame of an animation or a multi-page TIFF
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        averageable = _averageable(image)
        if averageable is not image:
            image.close()  # the decoded frame: freed before the shrinking makes its own copy
        small = _shrink(averageable)
    except Exception:  # noqa: BLE001 - truncated or corrupt data in any decoder
        raise ImageError(
            422,
            f"{name}: the image data is corrupt, truncated or in a layout that is not supported",
        ) from None
    small.getexif()[ExifTags.Base.Orientation] = orientation
    ImageOps.exif_transpose(small, in_place=True)  # the small image: no full-size copy
    return small


def _averageable_mode(image: Image.Image) -> str:
    """A mode whose pixels can be averaged: palette and 1-bit images as grey levels, a
    transparent colour key as an alpha band (neither would survive shrinking)."""
    mode = image.mode
    keyed = "transparency" in image.info and mode in ("1", "L", "P", "RGB")
    if mode == "PA" or (keyed and mode != "RGB"):
        return "LA"
    if keyed:
        return "RGBA"
    if mode in ("1", "P"):
        return "L"
    return mode


def _averageable(image: Image.Image) -> Image.Image:
    mode = _averageable_mode(image)
    return image if mode == image.mode else image.convert(mode)


def _shrink(image: Image.Image) -> Image.Image:
    """At most ``WORK_SIZE`` pixels a side (box average; any mode but palettes): the digit
    ends up 20×20 anyway, and the float maths below then costs kilobytes, not hundreds of
    megabytes."""
    factor = max(image.size) / WORK_SIZE
    if factor <= 1:
        return image
    size = (max(1, math.ceil(image.width / factor)), max(1, math.ceil(image.height / factor)))
    return image.resize(size, Image.Resampling.BOX)


def _grey_and_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """The image as grey levels ("L", or "F" in [0, 1] for 16/32-bit) and its alpha, if any."""
    mode = image.mode
    if mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float32) / 65535.0
        return Image.fromarray(pixels, mode="F"), None
    if mode in ("I", "F"):
        # A float image may hold NaN or ±inf: no ink there.
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0, posinf=0, neginf=0)
        peak = float(pixels.max()) if pixels.size else 1.0
        # Floats are usually in [0, 1], integers 8- or 16-bit in a wider container.
        top = next((t for t in (1.0, 255.0, 65535.0) if peak <= t), peak)
        return Image.fromarray(np.clip(pixels / top, 0, 1), mode="F"), None
    if mode == "LAB":  # the L* channel is the lightness: already grey
        return image.getchannel("L"), None
    if mode in ("La", "RGBa"):  # premultiplied alpha
        image = image.convert("LA" if mode == "La" else "RGBA")
    elif mode == "HSV":
        image = image.convert("RGB")
    elif "transparency" in image.info and mode in ("1", "L", "P", "RGB"):
        image = image.convert("RGBA")
    if image.mode in ("LA", "PA", "RGBA"):
        return image.convert("L"), image.getchannel("A")
    return image.convert("L"), None


def to_grey(image: Image.Image, name: str = "file") -> np.ndarray:
    """Float32 [H, W] in [0, 1], at most ``WORK_SIZE`` a side: transparency composited onto
    white paper, 16/32-bit depths scaled. Any mode Pillow opens is handled or refused (415)."""
    try:
        grey, alpha = _grey_and_alpha(image)
    except (ValueError, OSError):
        raise ImageError(415, f"{name}: images in mode {image.mode} are not supported") from None
    pixels = np.asarray(_shrink(grey), dtype=np.float32)
    if grey.mode == "L":
        pixels /= 255.0
    if alpha is not None:
        opacity = np.asarray(_shrink(alpha), dtype=np.float32) / 255.0
        pixels = pixels * opacity + (1.0 - opacity)
    return np.clip(pixels, 0.0, 1.0)


def to_white_on_black(grey: np.ndarray) -> np.ndarray:
    """Invert dark-ink-on-light images and take the background (the border's level) to 0."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        grey = 1.0 - grey
        border = 1.0 - border
    background = np.median(border)
    span = grey.max() - background
    if span <= 1e-6:
        return np.zeros_like(grey)
    return np.clip((grey - background) / span, 0, 1)


def crop_to_ink(ink: np.ndarray) -> np.ndarray | None:
    """The bounding box of the digit, or None for a blank image."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return None
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_and_centre(digit: np.ndarray) -> np.ndarray:
    """Fit into 20×20 (aspect kept, antialiased), then centre by mass in 28×28."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(digit.astype(np.float32), mode="F").resize(
        new_size, Image.Resampling.LANCZOS
    )
    small = np.clip(np.asarray(resized), 0, 1)
    canvas = np.zeros((SIZE, SIZE), np.float32)
    total = small.sum()
    ys, xs = np.indices(small.shape)
    cy = (ys * small).sum() / total if total > 0 else small.shape[0] / 2
    cx = (xs * small).sum() / total if total > 0 else small.shape[1] / 2
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - small.shape[0]))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - small.shape[1]))
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


def load_upload(data: bytes, max_pixels: int, name: str = "file") -> np.ndarray:
    """Decode one uploaded image and return float32 [28, 28] in [0, 1], white digit on black
    (MNIST-style). Raises ImageError (413, 415 or 422) naming ``name``."""
    return mnist_like(open_image(data, max_pixels, name), name)


def mnist_like(image: Image.Image, name: str = "file") -> np.ndarray:
    """An opened upload (``open_image``) decoded and made MNIST-like, float32 [28, 28]."""
    grey = to_grey(decode(image, name), name)
    digit = crop_to_ink(to_white_on_black(grey))
    if digit is None:
        return np.zeros((SIZE, SIZE), np.float32)
    return fit_and_centre(digit)
