"""What the routers share about reading a request: query parameters, uploaded files, content
negotiation, and the operations that take uploads on a path that also takes JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from app.edge import negotiation

MULTIPART = "multipart/form-data"

NrowQuery = Annotated[
    int | None, Query(ge=1, le=256, description="PNG grids: images per row (default: square)")
]
ScaleQuery = Annotated[int, Query(ge=1, le=16, description="PNG only: upscale factor")]
UploadedFiles = Annotated[
    list[UploadFile],
    File(description="One or more digit images (PNG, JPEG, GIF, BMP, WebP, TIFF)", min_length=1),
]


async def read_body(request: Request) -> bytes:
    """The whole body. Declared before the model dependency, it is read before the version is
    picked: a version swapped in while a slow client sends serves its request."""
    return await request.body()


RawBody = Annotated[bytes, Depends(read_body)]


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


def content_type(scope: Scope) -> str:
    """The request's media type, lower case, without parameters ("" when there is none)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


class UploadsRoute(APIRoute):
    """The multipart operation of a path that also takes JSON: it matches multipart requests
    only, and is registered before the JSON operation, which gets every other request. Both
    are parsed by FastAPI; ``app.api.openapi`` documents them as one operation with two
    request bodies."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and content_type(scope) != MULTIPART:
            return Match.NONE, {}
        return match, child


async def json_or_uploads(request: Request) -> None:
    """415 for a body that is neither JSON (this operation) nor multipart (``UploadsRoute``'s)."""
    kind = content_type(request.scope)
    if kind not in ("", negotiation.JSON) and not kind.endswith("+json"):
        raise HTTPException(
            415,
            detail=f"send {negotiation.JSON} (codes or seeds) or {MULTIPART} "
            "(image files in parts named file)",
        )
