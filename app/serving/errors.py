"""What can go wrong between a request and the model, as exceptions the API answers.

The API turns each into its HTTP answer (``app.api.errors``), in the service's format or in a
standard protocol's (TensorFlow Serving's); the serving code only says what happened.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class: ``message`` is what the client is told."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class LoadError(ServingError):
    """A version that cannot be served; ``code`` is TensorFlow Serving's error code name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Unavailable(ServingError):
    """No version can answer (HTTP 503); the message says why and how to fix it."""


class VersionNotFound(ServingError):
    """The requested version is not served (HTTP 404)."""


class InvalidInput(ServingError):
    """The model refused a request's inputs (TensorFlow's InvalidArgument): a client error."""


class Overloaded(ServingError):
    """Refused or timed out by admission control: answered 503 with ``Retry-After``."""

    def __init__(self, reason: str, message: str, retry_after: int):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class OverShare(ServingError):
    """One client has more admitted than its share: answered 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class BatcherClosed(ServingError):
    """The version is being unloaded; the caller retries on the current one."""
