"""How the standard protocols answer errors: ``{"error": message}`` with an HTTP status."""

from __future__ import annotations

from collections.abc import Mapping


class ProtocolError(Exception):
    """An error answered ``{"error": message}`` with ``status`` (and ``headers``)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
