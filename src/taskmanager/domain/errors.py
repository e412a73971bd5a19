"""Every error the task manager raises, under one root.

Each error carries a stable machine-readable ``code`` (the one the HTTP API returns), a
readable message and structured fields. Entrypoints map them to transport responses in one
place; adapters translate vendor errors into these with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TaskManagerError(Exception):
    """Root of every error raised by taskmanager."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequestError(TaskManagerError):
    """A request or command broke a rule of the contract (a limit, a pattern, a type).

    The subclasses say more where a caller can tell the difference: the command itself
    (:class:`InvalidCommandError`), its size (:class:`PayloadTooLargeError`)."""

    code = "INVALID_REQUEST"


class InvalidCommandError(InvalidRequestError):
    """A command that was read fine but breaks the contract: a field out of its range, or
    fields that disagree (``heartbeat_seconds`` over the timeout); ``details["field"]``
    names the field to blame where there is one."""


class UnknownTaskTypeError(InvalidCommandError):
    """A submit of a task type that no processor of this deployment takes (where the
    deployment names its types); ``details["known_types"]`` lists those it takes."""

    code = "UNKNOWN_TASK_TYPE"

    def __init__(self, task_type: str, known_types: list[str]) -> None:
        # The message names the known types, not the one sent (errors echo no request data).
        known = ", ".join(known_types) if known_types else "none"
        super().__init__(
            f"no processor here takes tasks of this type; the known types are: {known}",
            details={"field": "type", "known_types": known_types},
        )
        self.task_type = task_type
        self.known_types = known_types


class PayloadTooLargeError(InvalidRequestError):
    """A JSON value (input, result, body) is larger than its limit."""

    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(
            f"{field} is {size} bytes serialised; the limit is {limit} bytes",
            details={"field": field, "size": size, "limit": limit},
        )
        self.field = field
        self.size = size
        self.limit = limit


class InvalidCursorError(InvalidRequestError):
    """A list cursor that this service did not issue (tampered, truncated, foreign)."""

    def __init__(self) -> None:
        super().__init__("cursor is not valid; pass next_cursor from a previous page unchanged")


class TaskNotFoundError(TaskManagerError):
    """No such task for this caller (absent, expired, or owned by someone else)."""

    code = "TASK_NOT_FOUND"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} was not found", details={"task_id": task_id})
        self.task_id = task_id


class TaskAlreadyFinishedError(TaskManagerError):
    """The task is terminal; nothing changes a terminal task."""

    code = "TASK_ALREADY_FINISHED"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            f"task {task_id} already finished with status {status}",
            details={"task_id": task_id, "status": status},
        )
        self.task_id = task_id
        self.status = status


class IdempotencyKeyReusedError(TaskManagerError):
    """The Idempotency-Key was used before with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, task_id: str) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request",
            details={"task_id": task_id},
        )
        self.task_id = task_id


class InvalidTransitionError(TaskManagerError):
    """A status change the state machine does not allow."""

    code = "INVALID_TRANSITION"

    def __init__(self, task_id: str, current: str, requested: str) -> None:
        super().__init__(
            f"task {task_id} cannot move from {current} to {requested}",
            details={"task_id": task_id, "current": current, "requested": requested},
        )


class StorageError(TaskManagerError):
    """The store failed (after bounded retries, where the adapter retries)."""

    code = "STORAGE_UNAVAILABLE"


class StorageSchemaError(StorageError):
    """The store's schema is newer than this code understands."""

    code = "STORAGE_SCHEMA_UNSUPPORTED"


class PublishError(TaskManagerError):
    """Some outbound events could not be delivered; ``failed_event_ids`` names them."""

    code = "PUBLISH_FAILED"

    def __init__(self, failed_event_ids: list[str], reason: str) -> None:
        super().__init__(
            f"{len(failed_event_ids)} event(s) not delivered: {reason}",
            details={"failed_event_ids": failed_event_ids},
        )
        self.failed_event_ids = failed_event_ids


class PushError(TaskManagerError):
    """A message could not be sent to a WebSocket connection that is still there
    (throttled, or the gateway failing), after bounded retries: send it again later."""

    code = "PUSH_FAILED"
