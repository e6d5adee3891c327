"""Exceptions with a stable `extensions.code`, shared by the API and the workers."""

from __future__ import annotations

from typing import Any


class ConfigError(RuntimeError):
    """The service cannot start with the configuration it was given."""


class ApiError(Exception):
    """An expected failure reported to the client with `extensions.code`."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extra}


class BadUserInput(ApiError):
    """The request's arguments are invalid."""

    code = "BAD_USER_INPUT"


class NotFound(ApiError):
    """The requested object does not exist."""

    code = "NOT_FOUND"


class Unauthenticated(ApiError):
    """No valid credentials were presented."""

    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    """The credentials do not allow this operation."""

    code = "FORBIDDEN"


class ServiceUnavailable(ApiError):
    """A dependency (the database) cannot be reached right now."""

    code = "SERVICE_UNAVAILABLE"
