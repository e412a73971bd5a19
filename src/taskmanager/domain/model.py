"""The task and its state machine.

A :class:`Task` is an immutable record. Nothing mutates it: a use case decides a guarded
:class:`Change` with pure functions, the repository applies it atomically, and
:func:`apply_change` is the one definition of what a change does to a task.

Values that come from outside (commands, progress, errors) are pydantic models validated once
at the boundary. The task and the other internal records are frozen ``msgspec.Struct``
classes built by keyword from values already validated, so internal steps never validate them
again (docs/performance.md: "Internal records").

Every pydantic model here sets ``defer_build=True`` (documented pydantic configuration):
pydantic then builds a model's validator and serializer when it is first used rather than at
import, so a Lambda handler's cold start pays only for the models that handler uses.
"""

# No ``from __future__ import annotations``: pydantic would then have to evaluate every string
# annotation when the class is created, which slows each handler's cold start.
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final

import msgspec
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from taskmanager.domain.errors import InvalidRequestError, PayloadTooLargeError

# --- Limits (docs/design.md §2 and §5). Every one is enforced and tested. -------------------
TYPE_MAX_LENGTH: Final = 64
TYPE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
ERROR_CODE_PATTERN: Final = r"^[A-Z][A-Z0-9_]{0,63}$"
MAX_PAYLOAD_BYTES: Final = 128 * 1024
MAX_PROGRESS_MESSAGE_BYTES: Final = 1024
MAX_ERROR_MESSAGE_BYTES: Final = 4 * 1024
MIN_TIMEOUT_SECONDS: Final = 1
MAX_TIMEOUT_SECONDS: Final = 604_800
DEFAULT_TIMEOUT_SECONDS: Final = 3_600
DEFAULT_RETENTION_SECONDS: Final = 604_800
MAX_LIST_LIMIT: Final = 100
DEFAULT_LIST_LIMIT: Final = 20
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
IDEMPOTENCY_KEY_PATTERN: Final = r"^[\x21-\x7e]+$"  # printable ASCII, no spaces
MAX_SEQUENCE: Final = 2**53 - 1  # exact in JSON numbers and DynamoDB alike

_IDEMPOTENCY_KEY_RE: Final = re.compile(IDEMPOTENCY_KEY_PATTERN)


class TaskStatus(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]


#: The legal moves, in one table. Terminal statuses map to the empty set.
TRANSITIONS: Final[dict[TaskStatus, frozenset[TaskStatus]]] = {
    TaskStatus.CREATED: frozenset({TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED}),
    TaskStatus.SUCCESSFUL: frozenset(),
    TaskStatus.FAILED: frozenset(),
}
OPEN_STATUSES: Final = frozenset(s for s, moves in TRANSITIONS.items() if moves)
TERMINAL_STATUSES: Final = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


class ErrorCode(StrEnum):
    """Codes the task manager itself writes into ``error.code``."""

    TIMEOUT = "TIMEOUT"
    HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
    #: Still CREATED ``start_timeout_seconds`` after submission: no processor picked it up.
    START_TIMEOUT = "START_TIMEOUT"
    CANCELLED = "CANCELLED"


def json_size(value: Any) -> int:
    """Bytes of ``value`` serialised as compact JSON (the size limits are measured this way)."""
    try:
        return len(pydantic_core.to_json(value, inf_nan_mode="strings"))
    except pydantic_core.PydanticSerializationError as exc:
        raise InvalidRequestError(f"value is not JSON: {exc}") from exc


def ensure_payload_size(value: Any, field: str) -> None:
    """For use cases: raise ``PayloadTooLargeError`` for a value over the payload limit."""
    size = json_size(value)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(field, size, MAX_PAYLOAD_BYTES)


def check_payload_size(value: Any, field: str) -> Any:
    """For pydantic validators: refuse a value over the payload limit."""
    size = json_size(value)
    if size > MAX_PAYLOAD_BYTES:
        raise PydanticCustomError(
            "payload_too_large",
            "{field} is {size} bytes serialised; the limit is {limit} bytes",
            {"field": field, "size": size, "limit": MAX_PAYLOAD_BYTES},
        )
    return value


def _check_utf8_bytes(value: str, limit: int, field: str) -> str:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise PydanticCustomError(
            "string_too_long_bytes",
            "{field} is {size} bytes in UTF-8; the limit is {limit} bytes",
            {"field": field, "size": size, "limit": limit},
        )
    return value


TaskType = Annotated[str, Field(min_length=1, max_length=TYPE_MAX_LENGTH, pattern=TYPE_PATTERN)]
# Strict: JSON ``true`` or ``"5"`` is not a number of seconds (lax mode would read 1 and 5).
TimeoutSeconds = Annotated[int, Field(ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS, strict=True)]
SequenceNumber = Annotated[int, Field(ge=1, le=MAX_SEQUENCE, strict=True)]


class Progress(BaseModel):
    """How far a RUNNING task has come."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    percent: float = Field(ge=0, le=100, allow_inf_nan=False, strict=True)
    message: str | None = None

    @field_validator("message")
    @classmethod
    def _message_size(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_utf8_bytes(value, MAX_PROGRESS_MESSAGE_BYTES, "progress.message")


class TaskError(BaseModel):
    """Why a task FAILED."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    code: str = Field(pattern=ERROR_CODE_PATTERN)
    message: str

    @field_validator("message")
    @classmethod
    def _message_size(cls, value: str) -> str:
        return _check_utf8_bytes(value, MAX_ERROR_MESSAGE_BYTES, "error.message")


#: Any JSON value. Typed ``Any`` rather than pydantic's ``JsonValue``, which would check every
#: node of a payload in Python; the size check (which also proves that the value serialises)
#: runs once, in the use case or in the contract's model validator.
JsonAny = Annotated[Any, Field(description="any JSON value, at most 128 KiB serialised")]


class SubmitTask(BaseModel):
    """The command (and HTTP body) that submits a task.

    ``input`` is limited to 128 KiB serialised, ``heartbeat_seconds`` and
    ``start_timeout_seconds`` to the effective timeout; these are checked by
    ``services.new_task``, where the default timeout is known."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    type: TaskType
    input: JsonAny = None
    timeout_seconds: TimeoutSeconds | None = None
    heartbeat_seconds: TimeoutSeconds | None = None
    start_timeout_seconds: TimeoutSeconds | None = None


def validate_idempotency_key(key: str) -> str:
    """Keys are 1-255 printable ASCII characters (the IETF draft leaves the form open)."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not _IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidRequestError(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
            details={"header": "Idempotency-Key"},
        )
    return key


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """One task record. Immutable; built only from validated values.

    Build it with keywords; derive a changed copy with ``msgspec.structs.replace``."""

    id: str
    owner: str
    type: str
    status: TaskStatus
    input: Any
    version: int
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime
    heartbeat_seconds: int | None = None
    start_timeout_seconds: int | None = None
    progress: Progress | None = None
    result: Any = None
    error: TaskError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    last_sequence: int | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def heartbeat_due_at(self) -> datetime | None:
        """When a RUNNING task with a heartbeat times out if it stays quiet."""
        if self.status is not TaskStatus.RUNNING or self.heartbeat_seconds is None:
            return None
        return self.updated_at + timedelta(seconds=self.heartbeat_seconds)

    @property
    def start_due_at(self) -> datetime | None:
        """When a CREATED task with a start timeout fails if no processor has picked it up."""
        if self.status is not TaskStatus.CREATED or self.start_timeout_seconds is None:
            return None
        return self.created_at + timedelta(seconds=self.start_timeout_seconds)

    @property
    def due_at(self) -> datetime | None:
        """The earliest moment the sweeper must look at this task: its deadline, or sooner
        the end of its start timeout while CREATED or of its heartbeat period while RUNNING;
        None once terminal."""
        if self.status in TERMINAL_STATUSES:
            return None
        # At most one of the two is set: a start timeout while CREATED, a heartbeat while
        # RUNNING.
        quiet = self.start_due_at or self.heartbeat_due_at
        return self.deadline_at if quiet is None else min(quiet, self.deadline_at)

    def is_expired(self, now: datetime) -> bool:
        """Past its retention at ``now``: gone for readers (docs/design.md §2: retention)."""
        return self.expires_at is not None and self.expires_at <= now


class Guard(msgspec.Struct, frozen=True, kw_only=True):
    """What must hold of the stored task for a change to apply, checked atomically.

    - ``statuses``: the stored status is one of these;
    - ``sequence``: if set, the stored ``last_sequence`` is absent or lower than it;
    - ``owner``: if set, the stored owner equals it;
    - ``version``: if set, the stored version equals it (optimistic concurrency);
    - ``types``: if set, the stored task's type is one of these (who may report on it).
    """

    task_id: str
    statuses: frozenset[TaskStatus] = OPEN_STATUSES
    sequence: int | None = None
    owner: str | None = None
    version: int | None = None
    types: frozenset[str] | None = None


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """What a guarded write sets. ``version`` always goes up by one.

    - ``progress``: replaces the stored progress, except that a RUNNING change without
      progress keeps the progress already stored (a bare heartbeat erases nothing);
      any other status clears it;
    - ``started_at`` is set only if the task has none yet;
    - ``sequence``, if set, becomes ``last_sequence``.
    """

    status: TaskStatus
    updated_at: datetime
    progress: Progress | None = None
    result: Any = None
    error: TaskError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    sequence: int | None = None


def guard_holds(task: Task, guard: Guard) -> bool:
    """The guard evaluated in Python (the memory adapter; databases evaluate it natively)."""
    return (
        task.status in guard.statuses
        and (
            guard.sequence is None
            or task.last_sequence is None
            or task.last_sequence < guard.sequence
        )
        and (guard.owner is None or task.owner == guard.owner)
        and (guard.version is None or task.version == guard.version)
        and (guard.types is None or task.type in guard.types)
    )


def apply_change(task: Task, change: Change) -> Task:
    """The task after ``change``: the one definition every adapter agrees with.

    The version goes up by one; status, ``updated_at``, result, error, ``finished_at`` and
    ``expires_at`` are the change's. Progress is the change's while RUNNING, except that a
    RUNNING change without progress keeps the stored one; any other status clears it.
    ``started_at`` is set only once, and the change's ``sequence``, if any, becomes
    ``last_sequence``.
    """
    if change.status is not TaskStatus.RUNNING:
        progress = None
    elif change.progress is None:
        progress = task.progress
    else:
        progress = change.progress
    return msgspec.structs.replace(
        task,
        status=change.status,
        version=task.version + 1,
        updated_at=change.updated_at,
        progress=progress,
        result=change.result,
        error=change.error,
        started_at=change.started_at if task.started_at is None else task.started_at,
        finished_at=change.finished_at,
        expires_at=change.expires_at,
        last_sequence=task.last_sequence if change.sequence is None else change.sequence,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: fixed width, so it sorts as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
