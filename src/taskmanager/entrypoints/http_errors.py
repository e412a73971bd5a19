"""Every error's HTTP status, in one table, and the one error body (docs/api.md, "Errors").

Both ways the API is served answer every error from here: the route table
(``http/route_table.py``, for Lambda and for `taskmanager serve` alike) and the local
server's own paths (a stream of a task, a static file, a body over the server's limit, a
failed group commit). An error is a :class:`TaskManagerError`, from the domain or one of
the transport's own below; its status is looked up by its class, the nearest one in
:data:`STATUS_BY_ERROR` along its bases, so a subclass answers as its parent unless it has
a row of its own.

The domain stays free of HTTP: it says what went wrong, this table says how HTTP shows it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict

from taskmanager.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidCommandError,
    InvalidRequestError,
    InvalidTransitionError,
    PayloadTooLargeError,
    StorageError,
    StorageSchemaError,
    TaskAlreadyFinishedError,
    TaskManagerError,
    TaskNotFoundError,
    UnknownTaskTypeError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger(__name__)

JSON: Final = "application/json"


# --- the transport's own errors -------------------------------------------------------------


class UnauthenticatedError(TaskManagerError):
    """The request carries no identity the API can own tasks by."""

    code = "UNAUTHENTICATED"


class RouteNotFoundError(TaskManagerError):
    """No route (nor static file, locally) at this path."""

    code = "ROUTE_NOT_FOUND"

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"no route {method} {path}")


class MethodNotAllowedError(TaskManagerError):
    """The path is a route, for other methods (``allowed``)."""

    code = "METHOD_NOT_ALLOWED"

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(f"{method} is not allowed on {path}", details={"allowed": allowed})
        self.allowed = allowed


class BodyTooLargeError(TaskManagerError):
    """A request body over the limit, refused before anything parses it; ``size`` is
    ``None`` when the server stopped reading once the body was over the limit."""

    code = PayloadTooLargeError.code

    def __init__(self, limit: int, size: int | None = None) -> None:
        if size is None:
            message = f"request body is over {limit} bytes"
            details: dict[str, Any] = {"field": "body", "limit": limit}
        else:
            message = f"request body is {size} bytes; the limit is {limit} bytes"
            details = {"field": "body", "size": size, "limit": limit}
        super().__init__(message, details=details)


class UnsupportedMediaTypeError(TaskManagerError):
    """A body sent as something other than JSON."""

    code = "UNSUPPORTED_MEDIA_TYPE"

    def __init__(self, content_type: str) -> None:
        super().__init__(
            "send the body as application/json", details={"content_type": content_type or None}
        )


class HostNotAllowedError(TaskManagerError):
    """A request whose ``Host`` is not one this server serves (``taskmanager serve``): a
    page on another site that rebound its own name to this machine (DNS rebinding)."""

    code = "HOST_NOT_ALLOWED"

    def __init__(self, host: str) -> None:
        super().__init__(
            f"this server does not serve the host {host!r}; "
            "start it with --allowed-host to serve that name",
            details={"host": host},
        )


class CrossSiteRequestError(TaskManagerError):
    """A state-changing request sent by a page of another site (its ``Origin`` header
    names another origin than the server's own)."""

    code = "CROSS_SITE_REQUEST"

    def __init__(self, origin: str) -> None:
        super().__init__(
            f"a page of {origin} may not change tasks on this server", details={"origin": origin}
        )


class HeadersTooLargeError(TaskManagerError):
    """The request line and headers are over the server's limit; refused before they are
    read whole."""

    code = "HEADERS_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request's headers are over {limit} bytes", details={"limit": limit})


# --- the table ------------------------------------------------------------------------------

#: The status of each error, by class; an error's status is that of its nearest class here.
STATUS_BY_ERROR: Final[Mapping[type[TaskManagerError], int]] = {
    # The request cannot be read: not JSON, a bad query parameter or header.
    InvalidRequestError: 400,
    UnauthenticatedError: 401,
    # A page of another site sent it (`taskmanager serve`).
    CrossSiteRequestError: 403,
    TaskNotFoundError: 404,
    RouteNotFoundError: 404,
    MethodNotAllowedError: 405,
    TaskAlreadyFinishedError: 409,
    InvalidTransitionError: 409,
    PayloadTooLargeError: 413,
    BodyTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    # Addressed to a name this server does not serve (`taskmanager serve`).
    HostNotAllowedError: 421,
    HeadersTooLargeError: 431,
    # Read fine, but what it asks breaks the contract.
    InvalidCommandError: 422,
    # A type no processor of the deployment takes (where it names its types).
    UnknownTaskTypeError: 422,
    IdempotencyKeyReusedError: 422,
    # The store failed after its retries: safe to retry.
    StorageError: 503,
    # A store newer than this code: retrying will not help.
    StorageSchemaError: 500,
    TaskManagerError: 500,
}


def status_for(error_type: type[TaskManagerError]) -> int:
    """The HTTP status of an error of ``error_type``: that of its nearest class in the
    table."""
    for cls in error_type.__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500  # not reached: TaskManagerError has a row


# --- the body -------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error response has this body (the OpenAPI document's schema of it)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    error: ErrorBody


def error_response(error: TaskManagerError, headers: Mapping[str, str] = {}) -> Response[str]:
    """The response for ``error``: its status from the table, the one error body. A 5xx is
    logged with its traceback (or its cause's: see :func:`internal_error`)."""
    status = status_for(type(error))
    if status >= 500:
        logger.error("request failed: %s", error.code, exc_info=error)
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return Response(
        status_code=status, content_type=JSON, body=json.dumps(body), headers=dict(headers)
    )


def internal_error(
    cause: Exception, message: str = "the request could not be completed"
) -> TaskManagerError:
    """A 500 for an exception nothing maps (a bug): ``cause`` is logged, never shown."""
    error = TaskManagerError(message)
    error.__cause__ = cause
    return error
