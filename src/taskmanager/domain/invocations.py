"""Lambda's asynchronous-invocation records as processor reports (docs/processors.md, "Any
function, no SDK").

A function invoked asynchronously by the ``TaskCreated`` rule, with destinations on success
and on failure, makes Lambda send one *invocation record* per invocation (after its retries)
to the destination: AWS's documented shape (AWS Lambda Developer Guide, "Capturing records of
Lambda asynchronous invocations")::

    {"version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z",
     "requestContext": {"requestId": "...", "functionArn": "arn:...:function:NAME:$LATEST",
                        "condition": "Success" | "RetriesExhausted" | "EventAgeExceeded",
                        "approximateInvokeCount": 3},
     "requestPayload": <the event the function was invoked with: our TaskCreated envelope>,
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Handled" | "Unhandled"},
     "responsePayload": <the return value, or {"errorType", "errorMessage", ...}>}

This module is the contract of that record (pydantic, tolerant of fields AWS may add) and the
pure translation into the ``TaskUpdated`` the task manager already understands, plus the use
case that records it. It lives in the domain because it is a rule of the task's life (which
outcome, which error code, which order), not a transport detail: the SQS message carrying it
is unwrapped by the updates handler.
"""

# No ``from __future__ import annotations``: pydantic would then have to evaluate every string
# annotation when the class is created (see domain/events.py).
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskmanager.domain.errors import InvalidRequestError
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import (
    ERROR_CODE_PATTERN,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_SEQUENCE,
    TaskError,
    TaskStatus,
    TaskType,
)
from taskmanager.domain.services import (
    DEFAULT_POLICY,
    Policy,
    RejectReason,
    UpdateOutcome,
    UpdateResult,
    record_update,
)

if TYPE_CHECKING:
    from taskmanager.domain.ports import Clock, TaskRepository

#: The error codes an invocation record can yield besides a sanitised ``errorType``.
FUNCTION_ERROR: Final = "FUNCTION_ERROR"
FUNCTION_TIMEOUT: Final = "FUNCTION_TIMEOUT"
FUNCTION_OUT_OF_MEMORY: Final = "FUNCTION_OUT_OF_MEMORY"
EVENT_AGE_EXCEEDED: Final = "EVENT_AGE_EXCEEDED"
INVALID_RESULT: Final = "INVALID_RESULT"
#: Codes the task manager and the SDK write themselves: an ``errorType`` that sanitises to
#: one of them becomes ``FUNCTION_ERROR``, so a function cannot pass for the task manager.
RESERVED_CODES: Final = frozenset(
    {"TIMEOUT", "HEARTBEAT_TIMEOUT", "CANCELLED", "INVALID_RESULT", "PROCESSOR_ERROR"}
)

_CODE_RE: Final = re.compile(ERROR_CODE_PATTERN)
# Lambda's own words for a timeout: "Task timed out after 3.00 seconds" (errorMessage), with
# errorType "Sandbox.Timedout" on current runtimes.
_TIMED_OUT_RE: Final = re.compile(r"Task timed out after [0-9.]+ seconds")
_TIMEOUT_TYPES: Final = frozenset({"Sandbox.Timedout"})
_OUT_OF_MEMORY_TYPES: Final = frozenset({"Runtime.OutOfMemory"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class _Model(BaseModel):
    # AWS adds fields to its records over time: ignored; the fields read are checked.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


class InvokedTaskDetail(_Model):
    id: str = Field(min_length=1, max_length=64)
    type: TaskType


class InvokedTask(_Model):
    """What the record's ``requestPayload`` must be: the ``TaskCreated`` envelope."""

    detail_type: Literal["TaskCreated"] = Field(alias="detail-type")
    source: str
    detail: InvokedTaskDetail


class RequestContext(_Model):
    request_id: str = Field(alias="requestId")
    function_arn: str = Field(alias="functionArn", min_length=1, max_length=256)
    condition: Literal["Success", "RetriesExhausted", "EventAgeExceeded"]
    approximate_invoke_count: int = Field(0, alias="approximateInvokeCount", ge=0)


class ResponseContext(_Model):
    status_code: int | None = Field(None, alias="statusCode")
    executed_version: str | None = Field(None, alias="executedVersion")
    function_error: Literal["Handled", "Unhandled"] | None = Field(None, alias="functionError")


class InvocationRecord(_Model):
    """One record of an asynchronous invocation, as Lambda sends it to a destination."""

    version: str
    timestamp: datetime
    request_context: RequestContext = Field(alias="requestContext")
    request_payload: InvokedTask = Field(alias="requestPayload")
    response_context: ResponseContext | None = Field(None, alias="responseContext")
    response_payload: Any = Field(None, alias="responsePayload")

    @property
    def succeeded(self) -> bool:
        context = self.response_context
        return self.request_context.condition == "Success" and (
            context is None or context.function_error is None
        )

    @property
    def function_arn(self) -> str:
        """The function's ARN without its version or alias: who reports (see
        :func:`reporter`)."""
        return unqualified_function_arn(self.request_context.function_arn)


def looks_like_invocation_record(data: object) -> bool:
    """Whether a decoded message claims to be an invocation record (then it must parse as
    one; anything else is not one of ours)."""
    return isinstance(data, dict) and "requestContext" in data and "requestPayload" in data


def parse_invocation_record(body: str | bytes) -> InvocationRecord:
    """The record in an SQS message body; raises ``InvalidRequestError`` for another shape."""
    try:
        return InvocationRecord.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InvalidRequestError(f"not a Lambda invocation record: {errors[:3]}") from exc


def unqualified_function_arn(arn: str) -> str:
    """``arn:aws:lambda:REGION:ACCOUNT:function:NAME`` without a ``:$LATEST``, version or
    alias suffix."""
    parts = arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 and parts[5] == "function" else arn


def function_name(arn: str) -> str:
    """The function's name in its ARN."""
    parts = unqualified_function_arn(arn).split(":")
    return parts[6] if len(parts) == 7 and parts[5] == "function" else arn


def record_sequence(record: InvocationRecord) -> int:
    """The record's ``sequence``: its timestamp in microseconds since the epoch.

    The SDK numbers an attempt's reports from the microsecond the attempt starts, one up per
    report; Lambda writes the record after the last attempt ended, so the record orders after
    every report of every attempt of that invocation: a RUNNING report left by a processor
    killed by its timeout does not outrank the record that says so. Two records of one task
    (the same ``TaskCreated`` delivered twice) are ordered by when their invocations ended."""
    micros = (record.timestamp.astimezone(UTC) - _EPOCH) // _MICROSECOND
    return max(1, min(micros, MAX_SEQUENCE))


def sanitised_code(error_type: str) -> str | None:
    """``errorType`` as an error code: ``ValueError`` -> ``VALUE_ERROR``,
    ``Runtime.ExitError`` -> ``RUNTIME_EXIT_ERROR``; None if nothing usable is left."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", error_type)
    code = re.sub(r"[^A-Z0-9]+", "_", spaced.upper()).strip("_")[:64].rstrip("_")
    if not _CODE_RE.fullmatch(code) or code in RESERVED_CODES:
        return None
    return code


def cut_utf8(text: str, limit: int = MAX_ERROR_MESSAGE_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def invocation_error(record: InvocationRecord) -> TaskError:
    """Why an invocation failed, as a task error (docs/processors.md has the table)."""
    payload = record.response_payload if isinstance(record.response_payload, dict) else {}
    error_type = payload.get("errorType")
    error_type = error_type if isinstance(error_type, str) else ""
    message = payload.get("errorMessage")
    message = message if isinstance(message, str) else ""
    condition = record.request_context.condition
    attempts = record.request_context.approximate_invoke_count
    if error_type in _TIMEOUT_TYPES or _TIMED_OUT_RE.search(message):
        code = FUNCTION_TIMEOUT
    elif error_type in _OUT_OF_MEMORY_TYPES:
        code = FUNCTION_OUT_OF_MEMORY
    elif not error_type and not message and condition == "EventAgeExceeded":
        code = EVENT_AGE_EXCEEDED
        message = "Lambda did not run the function within its maximum event age"
    else:
        code = (sanitised_code(error_type) if error_type else None) or FUNCTION_ERROR
    if not message:
        message = f"the function failed ({condition}) after {attempts} attempt(s)"
    if error_type:
        message = f"{error_type}: {message}"
    return TaskError(code=code, message=cut_utf8(message))


def update_from_invocation(record: InvocationRecord) -> TaskUpdated:
    """The ``TaskUpdated`` an invocation record stands for: SUCCESSFUL with the returned
    value, FAILED ``INVALID_RESULT`` if that value is not plain JSON or is over 128 KiB, or
    FAILED with :func:`invocation_error`. Its sequence is :func:`record_sequence`."""
    task_id = record.request_payload.detail.id
    sequence = record_sequence(record)
    if not record.succeeded:
        error = invocation_error(record)
        return TaskUpdated(
            task_id=task_id, status=TaskStatus.FAILED, sequence=sequence, error=error
        )
    result = record.response_payload
    try:
        # Plain JSON only: Python's json (and so a Python function's return value) writes
        # NaN and Infinity, which no JSON reader of the task resource accepts.
        json.dumps(result, allow_nan=False)
        return TaskUpdated(
            task_id=task_id, status=TaskStatus.SUCCESSFUL, sequence=sequence, result=result
        )
    except ValidationError as exc:
        reason = str(exc.errors(include_url=False, include_input=False)[0]["msg"])
    except ValueError as exc:
        reason = f"not JSON: {exc}"
    error = TaskError(code=INVALID_RESULT, message=cut_utf8(f"the result was refused: {reason}"))
    return TaskUpdated(task_id=task_id, status=TaskStatus.FAILED, sequence=sequence, error=error)


def record_invocation(
    record: InvocationRecord,
    *,
    repo: "TaskRepository",
    clock: "Clock",
    policy: Policy = DEFAULT_POLICY,
    types: frozenset[str] | None = None,
) -> UpdateResult:
    """Record an invocation's outcome on its task, as :func:`record_update` does.

    One difference: a record whose task already finished is **stale**, never rejected. The
    record only says how an invocation ended; the task's own processor (the SDK inside the
    function, a cancel, the sweeper) may have finished the task first, and that outcome
    stands. ``types``: the task types the function may report on (None: any)."""
    update = update_from_invocation(record)
    result = record_update(update, repo=repo, clock=clock, policy=policy, types=types)
    if result.reason is RejectReason.ALREADY_FINISHED:
        return UpdateResult(
            outcome=UpdateOutcome.STALE,
            task=result.task,
            detail=f"invocation record after the task finished ({result.detail})",
        )
    return result
