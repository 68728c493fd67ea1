"""What the routers share: field errors, content negotiation, query parameters, docs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, BinaryIO

import numpy as np
from fastapi import File, HTTPException, Query, Request, UploadFile

from app import images, negotiation
from app.config import Settings
from app.schemas import Problem
from app.uploads import UploadDecoder

NrowQuery = Annotated[
    int | None, Query(ge=1, le=256, description="PNG grids: images per row (default: square)")
]
ScaleQuery = Annotated[int, Query(ge=1, le=16, description="PNG only: upscale factor")]
UploadedFiles = Annotated[
    list[UploadFile],
    File(description="One or more digit images (PNG, JPEG, GIF, BMP, WebP, TIFF)", min_length=1),
]

OVERLOADED: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": "No model loaded yet, or overloaded / past VAE_REQUEST_TIMEOUT "
        "(with Retry-After)",
    },
}
VERSION_NOT_SERVED: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "The requested ?version= is not served"},
}
NOT_JSON: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body could not be parsed (not JSON)"},
}
IMAGES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "image/png": {},
            "application/x-npy": {},
            "application/octet-stream": {},
        },
        "description": "JSON by default; with `Accept: image/png`, the digit itself (one) or a "
        "tiled grid (several); with `Accept: application/x-npy` (or "
        "`application/octet-stream`), uint8 pixels [N, 28, 28] as a .npy file (or bare, "
        "shape in `X-Shape`).",
    },
    **NOT_JSON,
    406: {"model": Problem, "description": "Accept allows none of the offered types"},
    422: {"model": Problem, "description": "Invalid input; the message names the field"},
    **VERSION_NOT_SERVED,
    **OVERLOADED,
}


def invalid(loc: list[str | int], message: str, status: int = 422) -> HTTPException:
    """An error in FastAPI's own validation format, naming the offending field."""
    return HTTPException(status, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


def media_type(accept: str | None, offers: tuple[str, ...] = negotiation.IMAGE_TYPES) -> str:
    """The answer's media type, or 406 naming what is offered."""
    chosen = negotiation.choose(accept, offers)
    if chosen is None:
        raise HTTPException(406, detail=f"Accept must allow one of {', '.join(offers)}")
    return chosen


def accepted(request: Request, offers: tuple[str, ...] = negotiation.IMAGE_TYPES) -> str:
    """``media_type`` of the request's Accept header (read from the request: a Header
    parameter costs FastAPI ~9 µs more per request)."""
    return media_type(request.headers.get("accept"), offers)


def check_rows(rows: int, field: list[str | int], settings: Settings) -> None:
    """At most VAE_MAX_BATCH images per request."""
    if rows > settings.max_batch:
        raise invalid(field, f"at most {settings.max_batch} per request (VAE_MAX_BATCH)")


def check_png_size(kind: str, rows: int, scale: int, settings: Settings) -> None:
    """A PNG answer of at most VAE_MAX_OUTPUT_PIXELS pixels."""
    pixels = rows * (28 * scale) ** 2
    if kind == negotiation.PNG and pixels > settings.max_output_pixels:
        raise invalid(
            ["query", "scale"],
            f"a PNG of {rows} digits at scale {scale} would have {pixels} pixels, more than "
            f"VAE_MAX_OUTPUT_PIXELS ({settings.max_output_pixels}); lower scale or count",
        )


def spooled(files: list[UploadFile]) -> list[tuple[str, BinaryIO]]:
    """Each uploaded part's name (or its position) and its file, spooled to disk beyond 1 MB:
    decoding reads it from there."""
    return [(upload.filename or f"file #{i + 1}", upload.file) for i, upload in enumerate(files)]


async def load_images(
    uploads: UploadDecoder, files: Sequence[tuple[str, bytes | BinaryIO]]
) -> np.ndarray:
    """Uploaded files (name, then bytes or a file) made MNIST-like, float32 [N, 28, 28]; a
    bad file is a 4xx naming it."""
    batch = []
    for index, (name, source) in enumerate(files):
        try:
            batch.append(await uploads.load(source, name))
        except images.ImageError as error:
            raise invalid(["body", "file", index], error.message, error.status_code) from None
    return np.stack(batch)
