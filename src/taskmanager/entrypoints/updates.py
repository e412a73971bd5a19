"""Processors' ``TaskUpdated`` events, delivered by an EventBridge rule into SQS -> the
``record_update`` use case.

Each SQS message body is the EventBridge event. Outcomes (docs/design.md §3):
- applied: the task changed (the stream publishes the outbound event);
- duplicate, stale: acknowledged, logged and counted; nothing changed;
- rejected (unknown task, a different outcome for a finished task, a reused sequence, an
  event source not allowed to report on the task's type): acknowledged, logged with the
  reason and counted; retrying cannot make it legal;
- malformed (not JSON, not a ``TaskUpdated``, breaks the contract): the record fails, so SQS
  redelivers it and finally moves it to the dead-letter queue for a human to look at.
A storage failure also fails the record (SQS retries it). Partial batch failures mean only
those records come back.

Who may report: the envelope's ``source`` is the processor that published the update (its
IAM policy lets it publish with that source only). With ``TASKMANAGER_PROCESSOR_SOURCES`` set,
a source may report only on the task types it is listed for, checked in the guarded write.

The queue also carries Lambda's asynchronous-invocation records of functions without the SDK
(and the on-failure records of SDK processors): a body with ``requestContext`` and
``requestPayload`` is read as one and recorded by ``record_invocation``
(``taskmanager.domain.invocations``). Its reporter is the function: its unqualified ARN is the
"source" looked up in ``TASKMANAGER_PROCESSOR_SOURCES``. A body that claims to be a record
and is not one fails like any malformed message.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from pydantic import ValidationError

from taskmanager.domain.errors import InvalidRequestError
from taskmanager.domain.events import TaskUpdated, TaskUpdatedEvent, parse_event
from taskmanager.domain.services import UpdateOutcome, UpdateResult, record_update
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.batches import partial_batch_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from taskmanager.domain.invocations import InvocationRecord
    from taskmanager.entrypoints.bootstrap import Dependencies

_METRIC: Final = {
    UpdateOutcome.APPLIED: obs.UPDATES_APPLIED,
    UpdateOutcome.DUPLICATE: obs.UPDATES_DUPLICATE,
    UpdateOutcome.STALE: obs.UPDATES_STALE,
    UpdateOutcome.REJECTED: obs.UPDATES_REJECTED,
}


class MalformedUpdateError(ValueError):
    """A message that is not a valid ``TaskUpdated`` event (it goes to the DLQ)."""


class _Kind:
    TASK_UPDATED = "TaskUpdated"
    INVOCATION = "invocation"


def _kind(body: str) -> str | None:
    """What ``body`` claims to be: a ``TaskUpdated`` event, an invocation record, or
    neither (None: the event union then refuses it with its own error)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and data.get("detail-type") == TaskUpdated.DETAIL_TYPE:
        return _Kind.TASK_UPDATED
    # Imported on the first message that is not a TaskUpdated: a cold start serving
    # processors' reports does not pay for the invocation records' models (about 15 ms).
    from taskmanager.domain.invocations import looks_like_invocation_record  # noqa: PLC0415

    if looks_like_invocation_record(data):
        return _Kind.INVOCATION
    return None


def _parse(body: str) -> TaskUpdatedEvent | InvocationRecord:
    try:
        kind = _kind(body)
        if kind == _Kind.TASK_UPDATED:
            # The model the event union picks for this detail-type, validated from the same
            # text, without building the union's four outbound envelopes on a cold start.
            return TaskUpdatedEvent.model_validate_json(body)
        if kind == _Kind.INVOCATION:
            from taskmanager.domain.invocations import parse_invocation_record  # noqa: PLC0415

            return parse_invocation_record(body)
        event = parse_event(body)  # refused, or another detail-type, as the union says
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise MalformedUpdateError(f"not a TaskUpdated event: {errors[:3]}") from exc
    except InvalidRequestError as exc:
        raise MalformedUpdateError(exc.message) from exc
    if not isinstance(event, TaskUpdatedEvent):
        raise MalformedUpdateError(f"unexpected detail-type {event.detail_type}")
    return event


def _record(message: TaskUpdatedEvent | InvocationRecord, deps: Dependencies) -> UpdateResult:
    """The use case for ``message``: ``record_update`` or ``record_invocation``."""
    if isinstance(message, TaskUpdatedEvent):
        return record_update(
            message.detail,
            repo=deps.repo,
            clock=deps.clock,
            policy=deps.policy,
            types=deps.types_for(message.source),
        )
    from taskmanager.domain.invocations import record_invocation  # noqa: PLC0415

    return record_invocation(
        message,
        repo=deps.repo,
        clock=deps.clock,
        policy=deps.policy,
        types=deps.types_for(message.function_arn),
    )


def _describe(message: TaskUpdatedEvent | InvocationRecord) -> dict[str, Any]:
    """The log fields naming what arrived and from whom."""
    if isinstance(message, TaskUpdatedEvent):
        update = message.detail
        return {
            "task_id": update.task_id,
            "status": update.status.value,
            "sequence": update.sequence,
            "source": message.source,
        }
    return {
        "task_id": message.request_payload.detail.id,
        "condition": message.request_context.condition,
        "source": message.function_arn,
        "request_id": message.request_context.request_id,
    }


def create_handler(
    deps_provider: Callable[[], Dependencies],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """An SQS handler recording updates with ``deps_provider()``'s repository."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    log = obs.logger()

    def record_handler(record: SQSRecord) -> str:
        try:
            message = _parse(record.body)
        except MalformedUpdateError:
            obs.count(obs.UPDATES_MALFORMED)
            log.exception("malformed update message %s", record.message_id)
            raise
        described = _describe(message)
        with obs.task_keys(described.pop("task_id")):
            result = _record(message, deps_provider())
            obs.count(_METRIC[result.outcome])
            extra = {
                "outcome": result.outcome.value,
                **described,
                "message_id": record.message_id,
            }
            if result.outcome is UpdateOutcome.REJECTED:
                reason = result.reason.value if result.reason else None
                log.warning("update rejected: %s", result.detail, extra={**extra, "reason": reason})
            elif result.outcome is UpdateOutcome.APPLIED:
                log.info("update applied", extra=extra)
            else:
                log.info("update %s: %s", result.outcome.value, result.detail, extra=extra)
        return result.outcome.value

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return partial_batch_response(
            event, context, processor=processor, record_handler=record_handler
        )

    return handle


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    return obs.instrument(create_handler(bootstrap.aws_dependencies), obs.first_record("messageId"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The updates Lambda: SQS batches of EventBridge ``TaskUpdated`` events and Lambda
    invocation records."""
    result: dict[str, Any] = _lambda_handler()(event, context)
    return result
