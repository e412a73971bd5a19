"""DynamoDB stream -> outbound events on EventBridge: the AWS outbox.

Each stream record is one committed change (old image, new image); ``events_for_change``
turns it into its outbound event (none for a TTL removal or a rewrite that did not move the
version). The batch's events go out in as few ``PutEvents`` calls as the publisher can make,
then Powertools' ``BatchProcessor`` reports exactly the records whose events were not
delivered (or whose images could not be read), so Lambda retries only from those.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from taskmanager.domain.errors import PublishError
from taskmanager.domain.events import events_for_change
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.batches import partial_batch_response

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.ports import EventPublisher


class UndeliveredError(Exception):
    """The record's events were not delivered (retried by Lambda)."""


def _events_of(record: Mapping[str, Any]) -> list[OutboundEvent]:
    from taskmanager.adapters.dynamodb import task_from_image  # noqa: PLC0415

    change = record.get("dynamodb") or {}
    new_image = change.get("NewImage")
    if record.get("eventName") == "REMOVE" or not new_image:
        return []
    old_image = change.get("OldImage")
    old = task_from_image(old_image) if old_image else None
    return events_for_change(old, task_from_image(new_image))


def _publish_batch(
    records: list[Mapping[str, Any]], publisher: EventPublisher
) -> dict[str, Exception]:
    """Publish every record's events; returns the error of each record that failed, by
    sequence number."""
    errors: dict[str, Exception] = {}
    owners: dict[str, str] = {}  # event_id -> sequence number of its record
    events: list[OutboundEvent] = []
    log = obs.logger()
    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber"))
        try:
            record_events = _events_of(record)
        except Exception as exc:  # a malformed image: retrying cannot fix it, bisect will
            log.exception("stream record %s could not be read", sequence)
            errors[sequence] = exc
            continue
        for event in record_events:
            owners[event.event_id] = sequence
            events.append(event)
    if not events:
        return errors
    try:
        publisher.publish(events)
    except PublishError as exc:
        failed = set(exc.failed_event_ids)
        obs.count(obs.PUBLISH_FAILURES, len(failed))
        log.error("events not delivered", extra={"failed_event_ids": sorted(failed)})
        for event_id in failed:
            owner = owners.get(event_id)
            if owner is not None:
                errors.setdefault(owner, UndeliveredError(str(exc)))
        obs.count(obs.EVENTS_PUBLISHED, len(events) - len(failed))
        return errors
    obs.count(obs.EVENTS_PUBLISHED, len(events))
    for event in events:
        log.debug("published %s", event.DETAIL_TYPE, extra={"task_id": event.id})
    return errors


def create_handler(
    publisher_provider: Callable[[], EventPublisher],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A stream handler publishing through ``publisher_provider()``."""
    processor = BatchProcessor(
        event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
    )

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not event.get("Records"):
            return {"batchItemFailures": []}
        errors = _publish_batch(event.get("Records") or [], publisher_provider())

        def record_handler(record: DynamoDBRecord) -> None:
            error = errors.get(str(record.dynamodb.sequence_number if record.dynamodb else None))
            if error is not None:
                raise error

        return partial_batch_response(
            event, context, processor=processor, record_handler=record_handler
        )

    return handle


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    return obs.instrument(create_handler(bootstrap.publisher), obs.first_record("eventID"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The stream Lambda: DynamoDB stream batches (NEW_AND_OLD_IMAGES), partial failures."""
    result: dict[str, Any] = _lambda_handler()(event, context)
    return result
