"""Helpers for running the contracts on DynamoDB (moto in-process or moto server)."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from taskmanager.adapters.dynamodb import task_from_image
from taskmanager.domain.events import events_for_change

if TYPE_CHECKING:
    import pytest
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

    from taskmanager.domain.events import OutboundEvent

_names = itertools.count()


def table_name() -> str:
    return f"tasks-{next(_names)}"


def stream_events(
    client: DynamoDBClient, streams: DynamoDBStreamsClient, table: str
) -> list[OutboundEvent]:
    """Every event the table's stream yields so far, as the stream handler derives them:
    ``events_for_change(task_from_image(OldImage), task_from_image(NewImage))``."""
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    events: list[OutboundEvent] = []
    for shard in shards:
        iterator: Any = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                data: Any = record["dynamodb"]
                if "NewImage" not in data:
                    continue  # a TTL deletion announces nothing
                old = task_from_image(data["OldImage"]) if "OldImage" in data else None
                events += events_for_change(old, task_from_image(data["NewImage"]))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return events


def make_moto_writes_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB evaluates a condition and writes the item as one atomic step; moto does not
    (two threads can both pass a condition before either writes). Serialise moto's item
    operations so the race tests check our adapter, not moto (docs/storage.md)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def atomic(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, atomic)
