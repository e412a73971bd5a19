"""Event contracts (docs/design.md §4) and the one function that derives events from a change.

Outbound ``detail`` models are the task resource, flat, plus ``schema_version`` and
``event_id``; they forbid unknown fields. The inbound :class:`TaskUpdated` comes from
processors that deploy on their own schedule, so it ignores unknown fields and is strict on
the ones it reads. Envelopes form one discriminated union on ``detail-type``, parsed by the
module-level :data:`EVENT_ADAPTER`. Additive changes only: a breaking change is a new
``detail-type``.
"""

# No ``from __future__ import annotations``: pydantic would then have to evaluate every string
# annotation when the class is created, which slows each handler's cold start.
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taskmanager.domain.model import (
    JsonAny,
    Progress,
    SequenceNumber,
    Task,
    TaskError,
    TaskStatus,
    TaskType,
    check_payload_size,
)

SCHEMA_VERSION: Final = "1"
DEFAULT_SOURCE: Final = "taskmanager"
#: EventBridge refuses a PutEvents entry over 256 KB (detail, detail-type, source, ...).
MAX_EVENT_BYTES: Final = 256 * 1024


class TaskResource(BaseModel):
    """The task as the HTTP API returns it (docs/design.md §2)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    type: TaskType
    status: TaskStatus
    input: JsonAny = None
    progress: Progress | None = None
    result: JsonAny = None
    error: TaskError | None = None
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline_at: datetime
    heartbeat_seconds: int | None = None
    start_timeout_seconds: int | None = None
    expires_at: datetime | None = None


class _OutboundDetail(BaseModel):
    """Fields every outbound event carries: the task resource without input and result."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    DETAIL_TYPE: ClassVar[str]

    schema_version: Literal["1"] = SCHEMA_VERSION
    event_id: str = Field(description="'{id}:{version}': the same change always has the same id")
    id: str
    type: TaskType
    status: TaskStatus
    progress: Progress | None = None
    error: TaskError | None = None
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline_at: datetime
    heartbeat_seconds: int | None = None
    start_timeout_seconds: int | None = None
    expires_at: datetime | None = None

    @field_serializer("status", when_used="json")
    def _status_text(self, status: TaskStatus) -> str:
        """The status as JSON text. Said here because each event narrows ``status`` to a
        ``Literal`` of one member, which pydantic would otherwise serialise by inspecting the
        value (docs/performance.md: "Outbound events")."""
        return status.value


class TaskCreated(_OutboundDetail):
    """A task was submitted; processors of its ``type`` pick it up. Carries ``input``."""

    DETAIL_TYPE: ClassVar[str] = "TaskCreated"
    status: Literal[TaskStatus.CREATED] = TaskStatus.CREATED
    input: JsonAny = None


class TaskRunning(_OutboundDetail):
    """A task started, made progress or sent a heartbeat."""

    DETAIL_TYPE: ClassVar[str] = "TaskRunning"
    status: Literal[TaskStatus.RUNNING] = TaskStatus.RUNNING


class TaskSuccessful(_OutboundDetail):
    """A task finished; carries ``result``."""

    DETAIL_TYPE: ClassVar[str] = "TaskSuccessful"
    status: Literal[TaskStatus.SUCCESSFUL] = TaskStatus.SUCCESSFUL
    result: JsonAny = None


class TaskFailed(_OutboundDetail):
    """A task failed (processor error, timeout, heartbeat or start timeout, cancel); carries
    ``error``."""

    DETAIL_TYPE: ClassVar[str] = "TaskFailed"
    status: Literal[TaskStatus.FAILED] = TaskStatus.FAILED
    error: TaskError


OutboundEvent = TaskCreated | TaskRunning | TaskSuccessful | TaskFailed


class TaskUpdated(BaseModel):
    """A processor's report about one task (inbound; unknown fields are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)
    DETAIL_TYPE: ClassVar[str] = "TaskUpdated"

    task_id: str = Field(min_length=1, max_length=64)
    status: Literal[TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED]
    sequence: SequenceNumber | None = None
    progress: Progress | None = None
    result: JsonAny = None
    error: TaskError | None = None

    @field_validator("status", mode="wrap")
    @classmethod
    def _known_status(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """One plain error for a status a processor may not report."""
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "invalid_status", "status must be one of RUNNING, SUCCESSFUL, FAILED"
            ) from None

    @model_validator(mode="after")
    def _fields_match_status(self) -> Self:
        """RUNNING may carry ``progress``, SUCCESSFUL may carry ``result`` (at most 128 KiB
        serialised), FAILED must carry ``error``; every other of the three is absent or null."""
        status = self.status
        if self.progress is not None and status is not TaskStatus.RUNNING:
            raise PydanticCustomError(
                "progress_not_running", "progress is allowed only with status RUNNING"
            )
        if self.result is not None and status is not TaskStatus.SUCCESSFUL:
            raise PydanticCustomError(
                "result_not_successful", "result is allowed only with status SUCCESSFUL"
            )
        if (status is TaskStatus.FAILED) != (self.error is not None):
            raise PydanticCustomError(
                "error_with_failed", "error is required with status FAILED and only then"
            )
        if status is TaskStatus.SUCCESSFUL:
            check_payload_size(self.result, "result")
        return self


# --- Envelopes: the EventBridge shape (``source``, ``detail-type``, ``detail``). ------------


class _Envelope(BaseModel):
    # EventBridge adds version, id, account, time, region, resources: ignored when read.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    source: str = DEFAULT_SOURCE


class TaskCreatedEvent(_Envelope):
    detail_type: Literal["TaskCreated"] = Field("TaskCreated", alias="detail-type")
    detail: TaskCreated


class TaskRunningEvent(_Envelope):
    detail_type: Literal["TaskRunning"] = Field("TaskRunning", alias="detail-type")
    detail: TaskRunning


class TaskSuccessfulEvent(_Envelope):
    detail_type: Literal["TaskSuccessful"] = Field("TaskSuccessful", alias="detail-type")
    detail: TaskSuccessful


class TaskFailedEvent(_Envelope):
    detail_type: Literal["TaskFailed"] = Field("TaskFailed", alias="detail-type")
    detail: TaskFailed


class TaskUpdatedEvent(_Envelope):
    detail_type: Literal["TaskUpdated"] = Field("TaskUpdated", alias="detail-type")
    detail: TaskUpdated


Event = Annotated[
    TaskCreatedEvent | TaskRunningEvent | TaskSuccessfulEvent | TaskFailedEvent | TaskUpdatedEvent,
    Field(discriminator="detail_type"),
]
EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event, config=ConfigDict(defer_build=True))
OUTBOUND_DETAIL_TYPES: Final = tuple(
    cls.DETAIL_TYPE for cls in (TaskCreated, TaskRunning, TaskSuccessful, TaskFailed)
)
INBOUND_DETAIL_TYPES: Final = (TaskUpdated.DETAIL_TYPE,)

_ENVELOPE_BY_DETAIL: Final[dict[str, type[_Envelope]]] = {
    "TaskCreated": TaskCreatedEvent,
    "TaskRunning": TaskRunningEvent,
    "TaskSuccessful": TaskSuccessfulEvent,
    "TaskFailed": TaskFailedEvent,
    "TaskUpdated": TaskUpdatedEvent,
}


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Parse an EventBridge-shaped event (JSON text or a decoded dict)."""
    if isinstance(data, dict):
        return EVENT_ADAPTER.validate_python(data)
    return EVENT_ADAPTER.validate_json(data)


def envelope(detail: OutboundEvent | TaskUpdated, source: str = DEFAULT_SOURCE) -> Event:
    """Wrap a trusted detail in its envelope without validating it again."""
    cls = _ENVELOPE_BY_DETAIL[detail.DETAIL_TYPE]
    event: Event = cls.model_construct(  # type: ignore[assignment]
        source=source, detail_type=detail.DETAIL_TYPE, detail=detail
    )
    return event


def event_detail_json(detail: OutboundEvent | TaskUpdated) -> str:
    """The ``Detail`` string of a PutEvents entry (and of an SQLite outbox row)."""
    return detail.model_dump_json()


def task_resource(task: Task) -> TaskResource:
    """The API representation of ``task``: the task's fields of the same names."""
    return TaskResource.model_validate(task, from_attributes=True)


def task_resource_json(task: Task) -> str:
    """The JSON text of ``task_resource(task)``: the body of the HTTP API's task responses."""
    return task_resource(task).model_dump_json()


#: The outbound event of each status.
EVENT_FOR_STATUS: Final[dict[TaskStatus, type[OutboundEvent]]] = {
    TaskStatus.CREATED: TaskCreated,
    TaskStatus.RUNNING: TaskRunning,
    TaskStatus.SUCCESSFUL: TaskSuccessful,
    TaskStatus.FAILED: TaskFailed,
}


def event_fields(task: Task) -> dict[str, Any]:
    """Every field of the outbound event announcing ``task``, in its model's order: the task
    resource's fields without input and result, except that ``TaskCreated`` carries the input
    and ``TaskSuccessful`` the result, with ``schema_version`` and ``event_id``."""
    fields = {
        "schema_version": SCHEMA_VERSION,
        "event_id": f"{task.id}:{task.version}",
        "id": task.id,
        "type": task.type,
        "status": task.status,
        "progress": task.progress,
        "error": task.error,
        "version": task.version,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "deadline_at": task.deadline_at,
        "heartbeat_seconds": task.heartbeat_seconds,
        "start_timeout_seconds": task.start_timeout_seconds,
        "expires_at": task.expires_at,
    }
    if task.status is TaskStatus.CREATED:
        fields["input"] = task.input
    elif task.status is TaskStatus.SUCCESSFUL:
        fields["result"] = task.result
    return fields


def event_for(task: Task) -> OutboundEvent:
    """The outbound event announcing ``task`` as it is now, validated by its model (whose
    ``status`` must be the task's)."""
    return EVENT_FOR_STATUS[task.status].model_validate(event_fields(task))


def events_for_change(
    old: Task | None, new: Task, build: Callable[[Task], OutboundEvent] = event_for
) -> list[OutboundEvent]:
    """The outbound events a committed change yields: one per applied change, none otherwise.

    ``old`` is None for a newly created task. A record whose version did not move (a replay,
    a rewrite by the store itself) yields nothing. ``build`` makes the event of ``new``: an
    adapter may pass one that gives the same event faster (``adapters/outbound.py``).
    """
    if old is not None and old.version >= new.version:
        return []
    return [build(new)]
