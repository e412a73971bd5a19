"""The answer of every handler fed a batch of records by SQS or a DynamoDB stream.

Each record goes through the handler's ``record_handler``; the records that raised are
named in ``batchItemFailures`` (Powertools' partial batch response), so that only they come
back, and the others are done. An empty batch (a test event, a warm-up ping) is an empty
answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.batch import process_partial_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.batch import BatchProcessor


def partial_batch_response(
    event: dict[str, Any],
    context: Any,
    *,
    processor: BatchProcessor,
    record_handler: Callable[[Any], Any],
) -> dict[str, Any]:
    """``{"batchItemFailures": [...]}``: the records of ``event`` that ``record_handler``
    raised for."""
    if not event.get("Records"):
        return {"batchItemFailures": []}
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return cast("dict[str, Any]", response)
