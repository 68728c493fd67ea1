"""Error answers: every error is JSON with the right status, never a 500 page.

The service's own routes answer ``{"detail": ...}`` (FastAPI's format, naming the field or
file); the routes of a standard protocol (TensorFlow Serving's) answer ``{"error": ...}`` with
that protocol's wording, through their router's route class (``ErrorFormatRoute``). The
serving, media and protocol code raise what happened; this module says how it is answered.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.api.answers import json_response
from app.media.uploads import UploadError
from app.protocols.errors import ProtocolError
from app.serving.errors import (
    InvalidInput,
    Overloaded,
    OverShare,
    Unavailable,
    VersionNotFound,
)

UNAVAILABLE_RETRY_AFTER = "5"  # seconds: about a model version's load and warm-up


def invalid(loc: list[str | int], message: str, status: int = 422) -> HTTPException:
    """An error in FastAPI's own validation format, naming the offending field."""
    return HTTPException(status, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


def add_error_handlers(app: FastAPI) -> None:
    """The service's error answers, ``{"detail": ...}``."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # loc/msg/type only: echoing the input could hold NaN, which JSON cannot carry.
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return json_response({"detail": detail}, 422)

    # Starlette's class: FastAPI's is a subclass, and routing raises Starlette's (404, 405).
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        route = request.scope.get("route")
        if isinstance(route, ErrorFormatRoute):  # a protocol's route, asked with another method
            response = route.error_response(request, error)
            if response is not None:
                return response
        return json_response({"detail": error.detail}, error.status_code, error.headers)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> Response:
        return json_response(
            {"detail": error.message}, 503, {"Retry-After": str(error.retry_after)}
        )

    @app.exception_handler(OverShare)
    async def over_share(request: Request, error: OverShare) -> Response:
        return json_response(
            {"detail": error.message}, 429, {"Retry-After": str(error.retry_after)}
        )

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, error: Unavailable) -> Response:
        return json_response(
            {"detail": error.message}, 503, {"Retry-After": UNAVAILABLE_RETRY_AFTER}
        )

    @app.exception_handler(VersionNotFound)
    async def version_not_found(request: Request, error: VersionNotFound) -> Response:
        return json_response({"detail": error.message}, 404)

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, error: InvalidInput) -> Response:
        return json_response({"detail": error.message}, 422)

    @app.exception_handler(UploadError)
    async def bad_upload(request: Request, error: UploadError) -> Response:
        loc: list[str | int] = ["body", "file", error.index]
        detail = [{"loc": loc, "msg": error.message, "type": "value_error"}]
        return json_response({"detail": detail}, error.status_code)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ErrorFormatRoute(APIRoute):
    """A route of a standard protocol: whatever goes wrong, including in its dependencies
    (picking the version), is answered ``{"error": ...}`` as ``protocol_error`` words it."""

    def protocol_error(self, request: Request, error: Exception) -> ProtocolError | None:
        """The protocol's answer to ``error``; None leaves it to the app's handlers."""
        if isinstance(error, StarletteHTTPException):
            return ProtocolError(error.status_code, str(error.detail), error.headers)
        return None

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def answer_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                response = self.error_response(request, error)
                if response is None:
                    raise
                return response

        return answer_errors

    def error_response(self, request: Request, error: Exception) -> Response | None:
        """``{"error": ...}`` for ``error``, or None if the protocol leaves it to the app."""
        problem = self.protocol_error(request, error)
        if problem is None:
            return None
        return json_response({"error": problem.message}, problem.status, problem.headers)
