"""Task <-> row: the parameters a task is written with, and the task a row is read back as.

Timestamps are stored as fixed-width RFC 3339 text (``format_time``'s form, so they sort as
text); the sweeper's due times are stored as epoch microseconds. ``input`` and ``result`` are
JSON text, progress and error the JSON of their models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from pydantic_core import from_json, to_json

from taskmanager.domain.model import Progress, Task, TaskError, TaskStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic import BaseModel

#: The columns of a task, in the order the insert parameters bind them.
COLUMNS: Final = (
    "id, owner, type, status, input, version, created_at, updated_at, deadline_at, "
    "heartbeat_seconds, progress, result, error, started_at, finished_at, expires_at, "
    "last_sequence, idempotency_key, request_fingerprint, start_timeout_seconds"
)
#: What every ``SELECT`` and ``RETURNING`` of a task reads, for :func:`row_to_task`: a JSON
#: array of the small columns, then ``input`` and ``result`` as stored. Python's sqlite3 pays
#: a fixed cost for every column it reads, so the small ones come as one value; the payloads
#: stay columns of their own because escaping them into a JSON string costs more than that.
TASK_ROW: Final = (
    "json_array("
    + ", ".join(c for c in COLUMNS.split(", ") if c not in {"input", "result"})
    + "), input, result"
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)


def epoch_us(value: datetime) -> int:
    """``value`` in microseconds since 1970 (the sweeper's due-time columns)."""
    return (value - _EPOCH) // _ONE_US


#: ``YYYY-MM-DDTHH:MM:SS.`` by the six numbers it shows. The timestamps of one second share
#: it, and formatting is the dearest part of building a row. Bounded: forgotten all at once
#: when full.
_SECONDS: Final[dict[tuple[int, int, int, int, int, int], str]] = {}
_SECONDS_MAX: Final = 4096
#: ``000`` to ``999``: a microsecond count is two of them.
_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))


def time_text(value: datetime) -> str:
    """A stored timestamp: exactly ``format_time(value)`` (fixed-width RFC 3339, UTC,
    microseconds, ``Z``), its seconds' text taken from a cache."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    seconds = _SECONDS.get(key)
    if seconds is None:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        seconds = _SECONDS[key] = "%04d-%02d-%02dT%02d:%02d:%02d." % key  # noqa: UP031
    micro = value.microsecond
    return f"{seconds}{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}Z"


def time_text_or_none(value: datetime | None) -> str | None:
    """A stored optional timestamp: :func:`time_text`, or NULL."""
    return None if value is None else time_text(value)


def value_json(value: Any) -> str:
    """A stored ``input`` or ``result``. pydantic-core writes it (and ``from_json`` reads it)
    in one call; the domain measured the same serialisation for the payload limit, so
    whatever it accepted serialises here too."""
    return to_json(value).decode()


def model_json(value: BaseModel | None) -> str | None:
    """A stored progress or error (NULL when absent)."""
    return None if value is None else value.model_dump_json()


_STATUS_BY_VALUE: Final = {status.value: status for status in TaskStatus}


def row_to_task(row: Sequence[Any]) -> Task:
    """The task of a row read as :data:`TASK_ROW`."""
    small, input_, result = row
    (
        task_id,
        owner,
        type_,
        status,
        version,
        created_at,
        updated_at,
        deadline_at,
        heartbeat_seconds,
        progress,
        error,
        started_at,
        finished_at,
        expires_at,
        last_sequence,
        idempotency_key,
        fingerprint,
        start_timeout_seconds,
    ) = from_json(small)
    return Task(
        id=task_id,
        owner=owner,
        type=type_,
        status=_STATUS_BY_VALUE[status],
        input=from_json(input_),
        version=version,
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        deadline_at=datetime.fromisoformat(deadline_at),
        heartbeat_seconds=heartbeat_seconds,
        start_timeout_seconds=start_timeout_seconds,
        progress=None if progress is None else Progress.model_validate_json(progress),
        result=None if result is None else from_json(result),
        error=None if error is None else TaskError.model_validate_json(error),
        started_at=None if started_at is None else datetime.fromisoformat(started_at),
        finished_at=None if finished_at is None else datetime.fromisoformat(finished_at),
        expires_at=None if expires_at is None else datetime.fromisoformat(expires_at),
        last_sequence=last_sequence,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )


# --- the parameters of the inserts (see statements.INSERT and statements.INSERT_NEW) ---------

#: Where ``created_at``'s text stands in either insert's parameters.
CREATED_AT_PARAM: Final = 6


def _first_params(task: Task) -> tuple[Any, ...]:
    """The first nine columns, ``id`` to ``deadline_at``, which every insert binds."""
    created_at, updated_at = task.created_at, task.updated_at
    created = time_text(created_at)
    return (
        task.id,
        task.owner,
        task.type,
        task.status.value,
        value_json(task.input),
        task.version,
        created,
        # A new task was created and updated at the same instant: format it once.
        created if updated_at is created_at else time_text(updated_at),
        time_text(task.deadline_at),
    )


def _heartbeat_due_us(task: Task) -> int | None:
    """The ``heartbeat_due_us`` column: when the task must next show that someone works on
    it. While RUNNING, its heartbeat; while CREATED, its start timeout (a processor must
    pick it up). RUNNING changes rewrite the column, any other change clears it."""
    due = task.start_due_at or task.heartbeat_due_at
    return None if due is None else epoch_us(due)


def task_params(task: Task) -> tuple[Any, ...]:
    """The parameters of ``INSERT`` (without the final ``now``): every column."""
    deadline_us = epoch_us(task.deadline_at)
    return (
        *_first_params(task),
        task.heartbeat_seconds,
        model_json(task.progress),
        None if task.result is None else value_json(task.result),
        model_json(task.error),
        time_text_or_none(task.started_at),
        time_text_or_none(task.finished_at),
        time_text_or_none(task.expires_at),
        task.last_sequence,
        task.idempotency_key,
        task.request_fingerprint,
        task.start_timeout_seconds,
        deadline_us,
        None if task.is_terminal else deadline_us,  # due_us: the deadline while open
        _heartbeat_due_us(task),
    )


def is_new(task: Task) -> bool:
    """Whether ``task`` has only the columns of ``INSERT_NEW`` (a task as submitted, without
    a start timeout: one with a start timeout has a due time in ``heartbeat_due_us``)."""
    return (
        task.status is TaskStatus.CREATED
        and task.start_timeout_seconds is None
        and task.progress is None
        and task.result is None
        and task.error is None
        and task.started_at is None
        and task.finished_at is None
        and task.expires_at is None
        and task.last_sequence is None
    )


def new_task_params(task: Task) -> tuple[Any, ...]:
    """The parameters of ``INSERT_NEW`` (without the final ``now``)."""
    deadline_us = epoch_us(task.deadline_at)
    return (
        *_first_params(task),
        task.heartbeat_seconds,
        task.idempotency_key,
        task.request_fingerprint,
        deadline_us,
        deadline_us,  # due_us: the deadline, while the task is open
    )
