"""What the OpenAPI description says beyond the handlers' type hints: the documented error
answers, and one operation for each path that takes JSON or uploads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from app.api.schemas import Problem
from app.edge import negotiation

Responses = dict[int | str, dict[str, Any]]

OVERLOADED: Responses = {
    503: {
        "model": Problem,
        "description": "No model loaded yet, or overloaded / past VAE_REQUEST_TIMEOUT "
        "(with Retry-After)",
    },
}
VERSION_NOT_SERVED: Responses = {
    404: {"model": Problem, "description": "The requested ?version= is not served"},
}
NOT_JSON: Responses = {
    400: {"model": Problem, "description": "The body could not be parsed (not JSON)"},
}
IMAGES_RESPONSES: Responses = {
    200: {
        "content": {
            negotiation.PNG: {},
            negotiation.NPY: {},
            negotiation.RAW: {},
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
UPLOAD_ERRORS: Responses = {
    400: {
        "model": Problem,
        "description": "Not parseable as JSON or as a multipart form, or too many parts",
    },
    413: {"model": Problem, "description": "Upload or image too large"},
    415: {
        "model": Problem,
        "description": "Not an image in an accepted format, or a body "
        "that is neither JSON nor multipart/form-data",
    },
}


def openapi(app: FastAPI, uploads: Sequence[BaseRoute]) -> dict[str, Any]:
    """FastAPI's description of ``app``, where each operation of ``uploads`` (``UploadsRoute``s,
    registered before the JSON operation of the same path, which FastAPI therefore describes)
    adds its multipart request body to that operation: one operation, two content types, as
    the Swagger UI offers them."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        extra = get_openapi(title=app.title, version=app.version, routes=list(uploads))
        for path, operations in extra["paths"].items():
            for method, operation in operations.items():
                body = schema["paths"][path][method]["requestBody"]
                body["content"].update(operation["requestBody"]["content"])
        app.openapi_schema = schema
    return app.openapi_schema
