"""The notify function (docs/push.md, "On AWS"): the outbound events, delivered by an
EventBridge rule into SQS, sent to the WebSocket connections that follow each task.

Each SQS message body is one EventBridge event (``TaskCreated``, ``TaskRunning``,
``TaskSuccessful``, ``TaskFailed``). For each, :func:`notify_subscribers` reads the task's
owner and input, finds the owner's connections that follow the task or every task of the
owner, and posts the ``task`` message to each; a gone connection has its subscriptions
deleted. A message that is not an outbound event fails (SQS redelivers it, then moves it to
the dead-letter queue); so does a send still throttled after its bounded attempts, or a
storage failure: partial batch failures bring back only those records, and clients drop
versions they have already seen.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from taskmanager.domain.events import TaskUpdatedEvent, parse_event
from taskmanager.domain.push import notify_subscribers
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.batches import partial_batch_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from taskmanager.domain.push import Pusher, Subscribers
    from taskmanager.entrypoints.bootstrap import Dependencies


class NotAnOutboundEventError(ValueError):
    """A message that is not an outbound task event (it goes to the DLQ)."""


def create_handler(
    deps_provider: Callable[[], Dependencies],
    subscribers_provider: Callable[[], Subscribers],
    pusher_provider: Callable[[], Pusher],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    log = obs.logger()

    def record_handler(record: SQSRecord) -> int:
        event = parse_event(record.body)
        if isinstance(event, TaskUpdatedEvent):
            raise NotAnOutboundEventError(f"{event.detail_type} is not an outbound event")
        detail, deps = event.detail, deps_provider()
        with obs.task_keys(detail.id):
            result = notify_subscribers(
                detail,
                repo=deps.repo,
                clock=deps.clock,
                subscribers=subscribers_provider(),
                pusher=pusher_provider(),
            )
            obs.count(obs.PUSH_SENT, result.sent)
            obs.count(obs.PUSH_GONE, result.gone)
            if result.sent or result.gone:
                log.info(
                    "task pushed",
                    extra={"version": detail.version, "sent": result.sent, "gone": result.gone},
                )
        return result.sent

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return partial_batch_response(
            event, context, processor=processor, record_handler=record_handler
        )

    return handle


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    handle = create_handler(bootstrap.aws_dependencies, bootstrap.connections, bootstrap.pusher)
    return obs.instrument(handle, obs.first_record("messageId"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The notify Lambda: SQS batches of EventBridge outbound task events."""
    result: dict[str, Any] = _lambda_handler()(event, context)
    return result
