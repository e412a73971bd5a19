"""Plays Lambda's part against moto server, which cannot run Lambda code.

moto 5.2 holds the table (with its stream), the bus with its rules and the SQS queues; a
rule with a Lambda target makes its ``put_events`` fail and a stream -> Lambda mapping
empties the stream, so neither is wired. Instead :class:`Pump` reads the stream and the
queues over HTTP, exactly as Lambda's pollers would, and calls our handlers in-process with
events shaped like Lambda's: a DynamoDB stream batch, an SQS batch (EventBridge event bodies),
and an EventBridge event for a processor (which in AWS is the rule's direct target).
Deleting a message only when the handler did not report it failed mirrors the SQS event
source mapping with ``ReportBatchItemFailures``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tests.support import FakeLambdaContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.processor import Processor

REGION = "us-east-1"


def _plain(value: Any) -> Any:
    """boto3 parses stream record timestamps into datetimes; Lambda passes epoch numbers."""
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class Pump:
    def __init__(
        self,
        *,
        dynamodb: Any,
        streams: Any,
        sqs: Any,
        table_name: str,
        updates_queue: str,
        audit_queue: str,
        processor_queues: dict[str, str],
        processors: dict[str, Processor],
        stream_handler: Callable[[Any, Any], Any],
        updates_handler: Callable[[Any, Any], Any],
        notify_queue: str | None = None,
        notify_handler: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.sqs = sqs
        self.notify_queue = notify_queue
        self.notify_handler = notify_handler
        self.streams = streams
        self.updates_queue = updates_queue
        self.audit_queue = audit_queue
        self.processor_queues = processor_queues
        self.processors = processors
        self.stream_handler = stream_handler
        self.updates_handler = updates_handler
        self.outbound: list[dict[str, Any]] = []  # every outbound event seen on the bus
        self.update_failures: list[str] = []
        arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self.stream_arn = arn
        self._iterators: dict[str, str | None] = {}
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            self._iterators[shard["ShardId"]] = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]

    # -- one poller each --
    def poll_stream(self) -> int:
        seen = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            answer = self.streams.get_records(ShardIterator=iterator, Limit=100)
            self._iterators[shard_id] = answer.get("NextShardIterator")
            records = [{**_plain(r), "eventSourceARN": self.stream_arn} for r in answer["Records"]]
            if records:
                seen += len(records)
                result = self.stream_handler({"Records": records}, FakeLambdaContext())
                assert result == {"batchItemFailures": []}, result
        return seen

    def _receive(self, queue_url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        return messages

    def _delete(self, queue_url: str, messages: list[dict[str, Any]]) -> None:
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )

    @staticmethod
    def _sqs_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
        name = queue_url.rsplit("/", 1)[-1]
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{name}",
            "awsRegion": REGION,
        }

    def poll_updates(self) -> int:
        messages = self._receive(self.updates_queue)
        if not messages:
            return 0
        event = {"Records": [self._sqs_record(m, self.updates_queue) for m in messages]}
        result = self.updates_handler(event, FakeLambdaContext())
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        self.update_failures.extend(sorted(failed))
        self._delete(self.updates_queue, [m for m in messages if m["MessageId"] not in failed])
        return len(messages)

    def poll_processors(self) -> int:
        seen = 0
        for task_type, queue_url in self.processor_queues.items():
            messages = self._receive(queue_url)
            for message in messages:
                # In AWS the rule targets the processor's Lambda directly: the event itself.
                outcome = self.processors[task_type].lambda_handler(
                    json.loads(message["Body"]), FakeLambdaContext()
                )
                assert outcome["outcome"] != "ignored", outcome
            self._delete(queue_url, messages)
            seen += len(messages)
        return seen

    def poll_notify(self) -> int:
        """The notify function's queue (outbound events for WebSocket followers)."""
        if self.notify_queue is None or self.notify_handler is None:
            return 0
        messages = self._receive(self.notify_queue)
        if not messages:
            return 0
        event = {"Records": [self._sqs_record(m, self.notify_queue) for m in messages]}
        result = self.notify_handler(event, FakeLambdaContext())
        assert result == {"batchItemFailures": []}, result
        self._delete(self.notify_queue, messages)
        return len(messages)

    def poll_audit(self) -> int:
        messages = self._receive(self.audit_queue)
        self.outbound.extend(json.loads(m["Body"]) for m in messages)
        self._delete(self.audit_queue, messages)
        return len(messages)

    def run(self, max_rounds: int = 50) -> None:
        """Poll everything until a whole round finds nothing to do."""
        for _ in range(max_rounds):
            busy = (
                self.poll_stream()
                + self.poll_processors()
                + self.poll_updates()
                + self.poll_notify()
                + self.poll_audit()
            )
            if not busy:
                return
        raise AssertionError("the pump did not settle")

    def events_of(self, task_id: str) -> list[tuple[str, int, str]]:
        """(detail-type, version, status) of every outbound event of the task, in order."""
        return [
            (e["detail-type"], e["detail"]["version"], e["detail"]["status"])
            for e in self.outbound
            if e["detail"]["id"] == task_id
        ]
