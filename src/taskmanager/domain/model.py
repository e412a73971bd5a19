"""The task and its state machine.

A :class:`Task` is an immutable record. Nothing mutates it: a use case decides a guarded
:class:`Change` with pure functions, the repository applies it atomically, and
:func:`apply_change` is the one definition of what a change does to a task.

Values that come from outside (commands, progress, errors) are pydantic models validated once
at the boundary; the task itself is a slotted dataclass built from values already validated,
so internal steps never re-validate.

Every pydantic model of the domain is declared with ``defer_build=True``: its validator and
serializer are built on first use rather than at import, so a Lambda handler's cold start
builds only the few schemas it uses (the stream handler never validates a command, the
updates handler never serialises a task resource), and a warm call runs the same built
schema as before.
"""

# Annotations are evaluated as Python reads them (no ``from __future__ import annotations``):
# with string annotations pydantic compiles and evaluates each field's at class creation,
# a few milliseconds of every handler's cold start.
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MethodType
from typing import Annotated, Any, Final, NamedTuple, TypeVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from taskmanager.domain.errors import InvalidRequestError, PayloadTooLargeError

# --- Limits (DESIGN §2 and §5). Every one is enforced and tested. ---------------------------
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


#: Any JSON value. Typed ``Any`` rather than pydantic's ``JsonValue``, whose per-node Python
#: discriminator costs more than a whole state change; the size check (which also proves
#: the value serialises) runs once, in the use case or the contract's model validator.
JsonAny = Annotated[Any, Field(description="any JSON value, at most 128 KiB serialised")]


class SubmitTask(BaseModel):
    """The command (and HTTP body) that submits a task.

    ``input`` is limited to 128 KiB serialised and ``heartbeat_seconds`` to the effective
    timeout; both are checked by ``services.new_task``, where the default timeout is known."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    type: TaskType
    input: JsonAny = None
    timeout_seconds: TimeoutSeconds | None = None
    heartbeat_seconds: TimeoutSeconds | None = None


def validate_idempotency_key(key: str) -> str:
    """Keys are 1-255 printable ASCII characters (the IETF draft leaves the form open)."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not _IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidRequestError(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
            details={"header": "Idempotency-Key"},
        )
    return key


class Task(NamedTuple):
    """One task record. Immutable; built only from validated values.

    A NamedTuple rather than a frozen dataclass: a state change builds a new record, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs more than
    the rest of the decision. Compare tasks by field, never with tuples."""

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
    def due_at(self) -> datetime | None:
        """The earliest moment the sweeper must look at this task (None once terminal)."""
        if self.status in TERMINAL_STATUSES:
            return None
        heartbeat = self.heartbeat_due_at
        if heartbeat is not None and heartbeat < self.deadline_at:
            return heartbeat
        return self.deadline_at

    def is_expired(self, now: datetime) -> bool:
        """Past its retention at ``now``: gone for readers (DESIGN: retention)."""
        return self.expires_at is not None and self.expires_at <= now


class Guard(NamedTuple):
    """What must hold of the stored task for a change to apply, checked atomically.

    - ``statuses``: the stored status is one of these;
    - ``sequence``: if set, the stored ``last_sequence`` is absent or lower than it;
    - ``owner``: if set, the stored owner equals it;
    - ``version``: if set, the stored version equals it (optimistic concurrency).
    """

    task_id: str
    statuses: frozenset[TaskStatus] = OPEN_STATUSES
    sequence: int | None = None
    owner: str | None = None
    version: int | None = None


class Change(NamedTuple):
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


_R = TypeVar("_R", bound=tuple[Any, ...])


def record_builder(cls: type[_R]) -> Callable[[tuple[Any, ...]], _R]:
    """``build((f1, f2, ...))`` makes a ``cls`` record from all its fields, in order.

    A NamedTuple's own constructor is a Python function (one interpreter frame per record);
    a state change builds several records, so the hot paths build them with
    ``tuple.__new__`` directly. The caller passes every field, defaults included.

    ``tuple.__new__`` is bound to ``cls`` as a method rather than wrapped in a ``partial``:
    a bound method hands ``cls`` on without the partial's own call layer (~15% less per
    record, and a lifecycle builds about twenty)."""
    build: Callable[[tuple[Any, ...]], _R] = MethodType(tuple.__new__, cls)
    return build


_task = record_builder(Task)
#: Bound once: an enum member read from its class costs a lookup through the enum machinery.
_RUNNING: Final = TaskStatus.RUNNING


def guard_holds(task: Task, guard: Guard) -> bool:
    """The guard evaluated in Python (the memory adapter; databases evaluate it natively)."""
    _, statuses, sequence, owner, version = guard
    return (
        task.status in statuses
        and (sequence is None or task.last_sequence is None or task.last_sequence < sequence)
        and (owner is None or task.owner == owner)
        and (version is None or task.version == version)
    )


def apply_change(task: Task, change: Change) -> Task:
    """The task after ``change``: the one definition every adapter agrees with."""
    # Unpacked in field order: one step instead of an attribute lookup per field.
    (
        task_id,
        owner,
        type_,
        _status,
        input_,
        version,
        created_at,
        _updated_at,
        deadline_at,
        heartbeat_seconds,
        old_progress,
        _result,
        _error,
        started_at,
        _finished_at,
        _expires_at,
        last_sequence,
        idempotency_key,
        fingerprint,
    ) = task
    status, updated_at, progress, result, error, start, finished_at, expires_at, sequence = change
    if status is not _RUNNING:
        progress = None
    elif progress is None:
        progress = old_progress
    return _task(
        (
            task_id,
            owner,
            type_,
            status,
            input_,
            version + 1,
            created_at,
            updated_at,
            deadline_at,
            heartbeat_seconds,
            progress,
            result,
            error,
            started_at if started_at is not None else start,
            finished_at,
            expires_at,
            sequence if sequence is not None else last_sequence,
            idempotency_key,
            fingerprint,
        )
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: fixed width, so it sorts as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
