"""Event contracts (DESIGN §4) and the one function that derives events from a change.

Outbound ``detail`` models are the task resource, flat, plus ``schema_version`` and
``event_id``; they forbid unknown fields. The inbound :class:`TaskUpdated` comes from
processors that deploy on their own schedule, so it ignores unknown fields and is strict on
the ones it reads. Envelopes form one discriminated union on ``detail-type``, parsed by the
module-level :data:`EVENT_ADAPTER`. Additive changes only: a breaking change is a new
``detail-type``.
"""

# Annotations are evaluated as Python reads them (no ``from __future__ import annotations``):
# with string annotations pydantic compiles and evaluates each field's at class creation,
# a few milliseconds of every handler's cold start.
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter
from pydantic_core import CoreSchema, core_schema

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

_M = TypeVar("_M", bound=BaseModel)


class _SerialisedAsText:
    """Serialise a ``TaskStatus`` field as the plain string it is (``StrEnum``).

    pydantic-core otherwise checks an enum against its members when serialising, and a
    ``Literal`` of one member against the literal's values: that was ten of the 35 thousand
    instructions of serialising a ``TaskCreated``. Validation, ``model_dump()`` (still the
    member) and the JSON schema are unchanged."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        serialised = {**handler(source), "serialization": core_schema.simple_ser_schema("str")}
        return cast("CoreSchema", serialised)


#: The annotation of every outbound ``status`` field.
_Status = Annotated[TaskStatus, _SerialisedAsText]

SCHEMA_VERSION: Final = "1"
DEFAULT_SOURCE: Final = "taskmanager"
#: EventBridge refuses a PutEvents entry over 256 KB (detail, detail-type, source, ...).
MAX_EVENT_BYTES: Final = 256 * 1024


class TaskResource(BaseModel):
    """The task as the HTTP API returns it (DESIGN §2)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    type: TaskType
    status: _Status
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
    expires_at: datetime | None = None


class _OutboundDetail(BaseModel):
    """Fields every outbound event carries: the task resource without input and result."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    DETAIL_TYPE: ClassVar[str]

    schema_version: Literal["1"] = SCHEMA_VERSION
    event_id: str = Field(description="'{id}:{version}': the same change always has the same id")
    id: str
    type: TaskType
    status: _Status
    progress: Progress | None = None
    error: TaskError | None = None
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline_at: datetime
    heartbeat_seconds: int | None = None
    expires_at: datetime | None = None


class TaskCreated(_OutboundDetail):
    """A task was submitted; processors of its ``type`` pick it up. Carries ``input``."""

    DETAIL_TYPE: ClassVar[str] = "TaskCreated"
    status: Annotated[Literal[TaskStatus.CREATED], _SerialisedAsText] = TaskStatus.CREATED
    input: JsonAny = None


class TaskRunning(_OutboundDetail):
    """A task started, made progress or sent a heartbeat."""

    DETAIL_TYPE: ClassVar[str] = "TaskRunning"
    status: Annotated[Literal[TaskStatus.RUNNING], _SerialisedAsText] = TaskStatus.RUNNING


class TaskSuccessful(_OutboundDetail):
    """A task finished; carries ``result``."""

    DETAIL_TYPE: ClassVar[str] = "TaskSuccessful"
    status: Annotated[Literal[TaskStatus.SUCCESSFUL], _SerialisedAsText] = TaskStatus.SUCCESSFUL
    result: JsonAny = None


class TaskFailed(_OutboundDetail):
    """A task failed (processor error, timeout, heartbeat timeout, cancel); carries ``error``."""

    DETAIL_TYPE: ClassVar[str] = "TaskFailed"
    status: Annotated[Literal[TaskStatus.FAILED], _SerialisedAsText] = TaskStatus.FAILED
    error: TaskError


OutboundEvent = TaskCreated | TaskRunning | TaskSuccessful | TaskFailed

_DETAIL_BY_STATUS: Final[dict[TaskStatus, type[OutboundEvent]]] = {
    TaskStatus.CREATED: TaskCreated,
    TaskStatus.RUNNING: TaskRunning,
    TaskStatus.SUCCESSFUL: TaskSuccessful,
    TaskStatus.FAILED: TaskFailed,
}


_PROGRESS_NOT_RUNNING = ("progress_not_running", "progress is allowed only with status RUNNING")
_RESULT_NOT_SUCCESSFUL = ("result_not_successful", "result is allowed only with status SUCCESSFUL")
_ERROR_NOT_FAILED = ("error_with_failed", "error is required with status FAILED and only then")


def _only_null(refusal: tuple[str, str]) -> CoreSchema:
    """A field that must be absent or null, refused with ``refusal`` (type, message)."""
    kind, message = refusal
    return core_schema.with_default_schema(
        core_schema.custom_error_schema(
            core_schema.none_schema(), custom_error_type=kind, custom_error_message=message
        ),
        default=None,
    )


def _result_size(value: Any) -> Any:
    return check_payload_size(value, "result")


def _fields_by_status(model: CoreSchema) -> CoreSchema:
    """``TaskUpdated``'s rules between fields, checked by pydantic-core rather than Python.

    The model's fields become a union tagged by ``status`` with one variant per status:
    RUNNING may carry ``progress``; SUCCESSFUL may carry ``result`` (at most 128 KiB); FAILED
    must carry ``error``; any other of the three must be absent or null. The JSON Schema is
    still generated from the plain fields, as before."""
    if model["type"] != "model" or model["schema"]["type"] != "model-fields":
        return model  # a reference to the model, or the model already built (as a field)
    fields_schema = model["schema"]
    fields = fields_schema["fields"]
    error_schema = fields["error"]["schema"]
    if error_schema["type"] != "default" or error_schema["schema"]["type"] != "nullable":
        raise TypeError("TaskUpdated.error must be an optional TaskError")

    def variant(status: TaskStatus, **schemas: CoreSchema) -> CoreSchema:
        chosen = {
            **fields,
            "status": {**fields["status"], "schema": core_schema.literal_schema([status])},
        }
        for name, schema in schemas.items():
            chosen[name] = {**fields[name], "schema": schema}
        return {**fields_schema, "fields": chosen}

    union = core_schema.tagged_union_schema(
        {
            TaskStatus.RUNNING.value: variant(
                TaskStatus.RUNNING,
                result=_only_null(_RESULT_NOT_SUCCESSFUL),
                error=_only_null(_ERROR_NOT_FAILED),
            ),
            TaskStatus.SUCCESSFUL.value: variant(
                TaskStatus.SUCCESSFUL,
                progress=_only_null(_PROGRESS_NOT_RUNNING),
                result=core_schema.with_default_schema(
                    core_schema.no_info_after_validator_function(
                        _result_size, core_schema.any_schema()
                    ),
                    default=None,
                ),
                error=_only_null(_ERROR_NOT_FAILED),
            ),
            TaskStatus.FAILED.value: variant(
                TaskStatus.FAILED,
                progress=_only_null(_PROGRESS_NOT_RUNNING),
                result=_only_null(_RESULT_NOT_SUCCESSFUL),
                error=error_schema["schema"]["schema"],  # required, not null
            ),
        },
        discriminator="status",
        custom_error_type="invalid_status",
        custom_error_message="status must be one of RUNNING, SUCCESSFUL, FAILED",
        metadata={"pydantic_js_functions": [lambda _schema, handler: handler(fields_schema)]},
    )
    return {**model, "schema": union}


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

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        return _fields_by_status(handler(source))


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
OUTBOUND_DETAIL_TYPES: Final = tuple(cls.DETAIL_TYPE for cls in _DETAIL_BY_STATUS.values())
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
    """The ``Detail`` string of a PutEvents entry (and of an SQLite outbox row).

    The same text as ``detail.model_dump_json()``, from the class's serializer directly:
    ``model_dump_json`` passes fifteen keyword options to it on every call, which cost a
    third as much again as serialising the event."""
    return detail.__pydantic_serializer__.to_json(detail).decode()


def task_resource(task: Task) -> TaskResource:
    """The API representation of ``task`` (trusted: built without re-validation)."""
    return _trusted(
        TaskResource,
        {
            "id": task.id,
            "type": task.type,
            "status": task.status,
            "input": task.input,
            "progress": task.progress,
            "result": task.result,
            "error": task.error,
            "version": task.version,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
            "started_at": task.started_at,
            "finished_at": task.finished_at,
            "deadline_at": task.deadline_at,
            "heartbeat_seconds": task.heartbeat_seconds,
            "expires_at": task.expires_at,
        },
    )


def task_resource_json(task: Task) -> str:
    """The JSON text of ``task_resource(task)``: its class's serializer called directly (the
    ``model_dump_json`` method passes fifteen keyword options to it on every call, as much
    again as a small task's JSON)."""
    resource = task_resource(task)
    return resource.__pydantic_serializer__.to_json(resource).decode()


#: Frozen models never change their fields-set, so one set per class serves every instance.
_FIELDS_SET: Final[dict[type[BaseModel], set[str]]] = {
    cls: set(cls.model_fields) for cls in (*_DETAIL_BY_STATUS.values(), TaskResource)
}


_new_object = object.__new__
# The slots' own setters: the same as ``object.__setattr__(obj, name, value)`` without looking
# the name up on the class each time (a frozen model refuses plain attribute assignment).
_set_dict: Final = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__


def _trusted(cls: type[_M], fields: dict[str, Any]) -> _M:
    """Build a model from complete, already validated fields, skipping validation.

    ``model_construct`` does the same but walks every field's metadata on each call, which
    costs more than the rest of a state change; callers here always pass every field."""
    obj = _new_object(cls)
    _set_dict(obj, fields)
    _set_fields_set(obj, _FIELDS_SET[cls])
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


def event_for(task: Task) -> OutboundEvent:
    """The outbound event announcing ``task`` as it is now."""
    # Unpacked in field order (one step), then built like ``_trusted`` without the call.
    (
        task_id,
        _owner,
        type_,
        status,
        input_,
        version,
        created_at,
        updated_at,
        deadline_at,
        heartbeat_seconds,
        progress,
        result,
        error,
        started_at,
        finished_at,
        expires_at,
        _last_sequence,
        _idempotency_key,
        _fingerprint,
    ) = task
    fields: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": f"{task_id}:{version}",
        "id": task_id,
        "type": type_,
        "status": status,
        "progress": progress,
        "error": error,
        "version": version,
        "created_at": created_at,
        "updated_at": updated_at,
        "started_at": started_at,
        "finished_at": finished_at,
        "deadline_at": deadline_at,
        "heartbeat_seconds": heartbeat_seconds,
        "expires_at": expires_at,
    }
    cls = _DETAIL_BY_STATUS[status]
    if cls is TaskCreated:
        fields["input"] = input_
    elif cls is TaskSuccessful:
        fields["result"] = result
    event = _new_object(cls)
    _set_dict(event, fields)
    _set_fields_set(event, _FIELDS_SET[cls])
    _set_extra(event, None)
    _set_private(event, None)
    return event


def events_for_change(old: Task | None, new: Task) -> list[OutboundEvent]:
    """The outbound events a committed change yields: one per applied change, none otherwise.

    ``old`` is None for a newly created task. A record whose version did not move (a replay,
    a rewrite by the store itself) yields nothing.
    """
    if old is not None and old.version >= new.version:
        return []
    return [event_for(new)]
